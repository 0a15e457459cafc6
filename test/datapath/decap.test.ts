// decap.test.ts: the backend-side decapsulation program. Frames the load
// balancer really encapsulated are stripped back to the client's packet
// (MACs and VLAN tags of the outer frame kept); everything that is not an
// IPIP packet for a local VIP passes untouched.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDecapVips } from '../../src/bpf/decap-writer.js';
import { concat, be16, ETH_P_IP, ETH_P_IPV6, ethernet, ipv4, ipv6, l3Offset, PROTO_IPIP, PROTO_TCP, tcp, type Bytes, type VlanTag } from '../../lab/packet.js';
import { DecapHarness, type LbHarness } from './lib/harness.js';
import { fixtureLb, MAC_ROUTER, toLb } from './lib/fixture.js';

const CLIENT4 = '192.0.2.10';
const CLIENT6 = '2001:db8:ff::10';

function tcpFrame(dst: string, dport: number, vlans?: VlanTag[]): Bytes {
  const v4 = !dst.includes(':');
  const src = v4 ? CLIENT4 : CLIENT6;
  const l3 = v4 ? ipv4({ src, dst, proto: PROTO_TCP, df: true }, tcp(src, dst, { sport: 40000, dport })) : ipv6({ src, dst, proto: PROTO_TCP }, tcp(src, dst, { sport: 40000, dport }));
  return toLb(v4 ? ETH_P_IP : ETH_P_IPV6, l3, vlans);
}

/** What the backend's stack must receive: the outer L2 header, inner ethertype, the client's packet. */
function expectInner(encapsulated: Bytes, original: Bytes): Bytes {
  const outer = l3Offset(encapsulated);
  const inner = l3Offset(original);
  return concat(encapsulated.subarray(0, outer.offset - 2), be16(inner.type), original.subarray(inner.offset));
}

describe('xdp_decap', () => {
  let lb: LbHarness;
  let decap: DecapHarness;
  beforeAll(() => {
    lb = fixtureLb();
    decap = new DecapHarness();
    applyDecapVips(decap.maps, ['10.100.0.1', '10.100.0.7', '2001:db8:100::1', '2001:db8:100::3']);
  });
  afterAll(() => {
    lb.close();
    decap.close();
  });

  const roundTrips: [string, string, number, VlanTag[]?][] = [
    ['IPv4 in IPv4', '10.100.0.1', 80],
    ['IPv6 in IPv6', '2001:db8:100::1', 443],
    ['IPv4 in IPv6', '10.100.0.7', 80],
    ['IPv6 in IPv4', '2001:db8:100::3', 80],
    ['IPv4 in IPv4 on a VLAN', '10.100.0.1', 80, [{ tci: 42 }]],
    ['IPv6 in IPv6 on QinQ', '2001:db8:100::1', 443, [{ tci: 1 }, { tci: 2 }]],
  ];
  for (const [name, vip, port, vlans] of roundTrips) {
    it(`${name}: the load balancer's output decapsulates to the client's packet`, () => {
      const original = tcpFrame(vip, port, vlans);
      const encapsulated = lb.run(original);
      expect(encapsulated.verdict).toBe('TX');
      const r = decap.run(encapsulated.out);
      expect(r.verdict).toBe('PASS');
      expect(r.reasons).toEqual({ DECAP_OK: 1 });
      expect(r.out.toString('hex')).toBe(Buffer.from(expectInner(encapsulated.out, original)).toString('hex'));
    });
  }

  const untouched = (name: string, frame: Bytes, reason: string): void => {
    it(`${name}: passes untouched`, () => {
      const r = decap.run(frame);
      expect(r.verdict).toBe('PASS');
      expect(r.reasons).toEqual({ [reason]: 1 });
      expect(r.out.equals(Buffer.from(frame))).toBe(true);
    });
  };

  {
    const inner = ipv4({ src: CLIENT4, dst: '10.200.0.1', proto: PROTO_TCP }, tcp(CLIENT4, '10.200.0.1', { sport: 1, dport: 80 }));
    untouched('IPIP whose inner destination is not a local VIP', toLb(ETH_P_IP, ipv4({ src: '172.16.1.1', dst: '10.1.0.1', proto: PROTO_IPIP }, inner)), 'DECAP_PASS_NOT_LOCAL');
    untouched('plain TCP to the backend', tcpFrame('10.1.0.1', 22), 'DECAP_PASS_NOT_TUNNEL');
    untouched('ARP', ethernet({ dst: 'ff:ff:ff:ff:ff:ff', src: MAC_ROUTER, type: 0x0806 }, new Uint8Array(28)), 'PASS_NOT_IP');
    untouched('fragmented outer IPIP', toLb(ETH_P_IP, ipv4({ src: '172.16.1.1', dst: '10.1.0.1', proto: PROTO_IPIP, mf: true }, inner)), 'DECAP_PASS_FRAGMENT');
    untouched('IPIP with a truncated inner header', toLb(ETH_P_IP, ipv4({ src: '172.16.1.1', dst: '10.1.0.1', proto: PROTO_IPIP }, inner.subarray(0, 12))), 'PASS_MALFORMED');
    untouched('truncated outer IPv6 header', toLb(ETH_P_IPV6, new Uint8Array(20)), 'PASS_MALFORMED');
  }

  it('the VIP set converges: removed addresses stop decapsulating', () => {
    applyDecapVips(decap.maps, ['2001:db8:100::1']);
    try {
      const encapsulated = lb.run(tcpFrame('10.100.0.1', 80));
      const r = decap.run(encapsulated.out);
      expect(r.reasons).toEqual({ DECAP_PASS_NOT_LOCAL: 1 });
      expect(decap.maps.vips.keys()).toHaveLength(1);
    } finally {
      applyDecapVips(decap.maps, ['10.100.0.1', '10.100.0.7', '2001:db8:100::1', '2001:db8:100::3']);
    }
  });
});
