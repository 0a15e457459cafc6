// second-chance.test.ts: GUE and the backend's decision (issue 17,
// docs/second-chance.md), in the real kernel through BPF_PROG_TEST_RUN. The
// load balancer sends a VIP in GUE mode as IP in UDP to port 6080 with the
// GUE header and, when the slot has one, its second hop (hops left 1); a slot
// whose second hop is the backend the packet goes to carries none. The
// decap program delivers what this host knows and sends on what it does
// not: the sockets it asks about are real ones this test opens on
// 127.0.0.1 (BPF_PROG_TEST_RUN runs in the caller's network namespace), so
// a SYN, a segment of an established connection, an unknown segment with
// and without a second hop, and one with no hop left each take their path.
// The same over IPv6 (outer and inner), with sockets on ::1. Not yet here:
// a valid syncookie ACK (it needs a listener's own cookie).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GUE_PORT } from '../../src/bpf/abi.js';
import { applyDecapVips } from '../../src/bpf/decap-writer.js';
import type { DesiredDatapath } from '../../src/core/datapath-plan.js';
import { featuresOf, tableOfSlots } from '../../src/core/desired-state.js';
import { concat, ETH_P_IP, ETH_P_IPV6, ethernet, ipv4, ipv4HeaderChecksumOk, ipv6, l3Offset, PROTO_TCP, PROTO_UDP, tcp, udp, type Bytes } from '../../lab/packet.js';
import { ipText } from '../../src/core/net.js';
import { DecapHarness, LbHarness } from './lib/harness.js';
import { CONTROL, MAC_LB, toLb } from './lib/fixture.js';

const VIP = '127.0.0.1';
const OWNER = { address: '10.1.0.1', mac: '02:00:00:00:01:01' };
const HOP = { address: '10.1.0.2', mac: '02:00:00:00:01:02' };
const SIZE = 251;

/** The VIP in GUE mode over two backends: every slot owned by OWNER, with HOP as second hop (or none). */
function state(port: number, withHop: boolean): DesiredDatapath {
  const owners = [OWNER.address, HOP.address];
  const table = tableOfSlots(SIZE, owners, {
    slots: new Uint32Array(SIZE).fill(0),
    ...(withHop ? { secondHops: new Uint32Array(SIZE).fill(1) } : {}),
  });
  return {
    vips: [{ name: 'gue', keys: [{ address: VIP, port, protocol: 'TCP' }], features: featuresOf({ mode: 'gue', affinity: 'fiveTuple', flowTable: false }), table }],
    backends: new Map([OWNER, HOP].map((b) => [b.address, { address: b.address, family: 4 as const, mac: b.mac }])),
  };
}

/** A client segment to the VIP, as it reaches the load balancer. */
const segment = (sport: number, dport: number, flags: { syn?: boolean; ack?: boolean }): Bytes =>
  toLb(ETH_P_IP, ipv4({ src: VIP, dst: VIP, proto: PROTO_TCP, df: true }, tcp(VIP, VIP, { sport, dport, flags: (flags.syn === true ? 0x02 : 0) | (flags.ack === true ? 0x10 : 0) })));

/** What follows the outer UDP header of a GUE frame: the GUE header, the hop (if any), the inner packet's offset. */
function gueOf(frame: Bytes): { udpDport: number; hlen: number; proto: number; hop: { magic: number; version: number; hopsLeft: number; family: number; address: string } | null; inner: number; outerDst: string } {
  const { offset } = l3Offset(frame);
  const ihl = (frame[offset]! & 0xf) * 4;
  expect(frame[offset + 9]).toBe(PROTO_UDP);
  const u = offset + ihl;
  const dv = new DataView(frame.buffer, frame.byteOffset);
  const g = u + 8;
  const hlen = frame[g]! & 0x1f;
  const h = g + 4;
  const hop = hlen === 0 ? null : { magic: frame[h]!, version: frame[h + 1]!, hopsLeft: frame[h + 2]!, family: frame[h + 3]!, address: [...frame.subarray(h + 4, h + 8)].join('.') };
  return { udpDport: dv.getUint16(u + 2), hlen, proto: frame[g + 1]!, hop, inner: h + hlen * 4, outerDst: [...frame.subarray(offset + 16, offset + 20)].join('.') };
}

/** A listening socket on `host` and one connection to it, established (the flows the decap program must find). */
async function heldConnection(host: string): Promise<{ server: Server; client: Socket; port: number; clientPort: number }> {
  const server = createServer(() => undefined);
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as { port: number }).port;
  const client = connect(port, host);
  await new Promise<void>((r) => client.on('connect', r));
  return { server, client, port, clientPort: client.localPort! };
}

describe('second chance: GUE from the load balancer, the decision at the backend', () => {
  let server: Server;
  let client: Socket;
  let port: number;
  let clientPort: number;
  let lb: LbHarness;
  let lbNoHop: LbHarness;
  let decap: DecapHarness;

  beforeAll(async () => {
    ({ server, client, port, clientPort } = await heldConnection(VIP));
    lb = new LbHarness();
    lb.program(state(port, true), CONTROL);
    lbNoHop = new LbHarness();
    lbNoHop.program(state(port, false), CONTROL);
    decap = new DecapHarness();
    applyDecapVips(decap.maps, [VIP]);
  });

  afterAll(() => {
    client?.destroy();
    server?.close();
    lb?.close();
    lbNoHop?.close();
    decap?.close();
  });

  it('the load balancer sends GUE to the owner with the slot\'s second hop, hops left 1', () => {
    const original = segment(clientPort, port, { ack: true });
    const r = lb.run(original);
    expect(r.verdict).toBe('TX');
    expect(r.reasons).toMatchObject({ FWD_GUE: 1 });
    const g = gueOf(r.out);
    expect(g.outerDst).toBe(OWNER.address);
    expect(g.udpDport).toBe(GUE_PORT);
    expect(g.proto).toBe(4);
    expect(g.hop).toEqual({ magic: 0x78, version: 1, hopsLeft: 1, family: 2, address: HOP.address });
    // The client's packet follows, untouched.
    const inner = l3Offset(original).offset;
    expect(Buffer.from(r.out.subarray(g.inner)).equals(Buffer.from(original.subarray(inner)))).toBe(true);
    expect(ipv4HeaderChecksumOk(r.out, l3Offset(r.out).offset)).toBe(true);
    // Without a second hop in the slot: the GUE header alone.
    const plain = gueOf(lbNoHop.run(original).out);
    expect(plain.hlen).toBe(0);
    expect(plain.hop).toBeNull();
  });

  it('a SYN is delivered at the owner (a new flow is the owner\'s)', () => {
    const r = decap.run(lb.run(segment(40001, port, { syn: true })).out);
    expect(r.verdict).toBe('PASS');
    expect(r.reasons).toEqual({ DECAP_OK: 1, EV_SC_SYN: 1 });
  });

  it('a segment of an established local connection is delivered, unwrapped to the client\'s packet', () => {
    const original = segment(clientPort, port, { ack: true });
    const r = decap.run(lb.run(original).out);
    expect(r.verdict).toBe('PASS');
    expect(r.reasons).toEqual({ DECAP_OK: 1, EV_SC_LOCAL: 1 });
    expect(Buffer.from(r.out.subarray(l3Offset(r.out).offset)).equals(Buffer.from(original.subarray(l3Offset(original).offset)))).toBe(true);
  });

  it('a segment this host does not know goes on to the second hop, with no hop left; without a hop it is delivered', () => {
    const gue = lb.run(segment(40002, port, { ack: true })).out;
    const r = decap.run(gue);
    expect(r.verdict).toBe('PASS'); // to the host's stack, which forwards it
    expect(r.reasons).toEqual({ DECAP_FWD_SECOND_HOP: 1 });
    const g = gueOf(r.out);
    expect(g.outerDst).toBe(HOP.address);
    expect(g.hop).toMatchObject({ hopsLeft: 0, address: HOP.address });
    expect(ipv4HeaderChecksumOk(r.out, l3Offset(r.out).offset)).toBe(true);
    // At the second hop (no hop left): delivered whatever it knows.
    const there = decap.run(r.out);
    expect(there.verdict).toBe('PASS');
    expect(there.reasons).toEqual({ DECAP_OK: 1, EV_SC_NO_HOP: 1 });
    // A slot without a second hop: delivered here.
    const alone = decap.run(lbNoHop.run(segment(40002, port, { ack: true })).out);
    expect(alone.reasons).toEqual({ DECAP_OK: 1, EV_SC_NO_HOP: 1 });
  });

  it('GUE that is not ours passes untouched: another version, a control message, another port', () => {
    const gue = lb.run(segment(clientPort, port, { ack: true })).out;
    const { offset } = l3Offset(gue);
    const g = offset + 20 + 8;
    for (const [what, at, value] of [['version 1', g, 0x40 | gue[g]!], ['control (C set)', g, 0x20 | gue[g]!], ['port 6081', offset + 23, 0xc1]] as const) {
      const bent = Uint8Array.from(gue);
      bent[at] = value;
      const r = decap.run(bent);
      expect(r.verdict, what).toBe('PASS');
      expect(r.reasons, what).toEqual({ DECAP_PASS_NOT_TUNNEL: 1 });
    }
    // A plain UDP datagram to some other service.
    const other = ethernet({ dst: MAC_LB, src: '02:00:00:00:00:09', type: ETH_P_IP }, ipv4({ src: '10.0.0.9', dst: '10.0.0.1', proto: PROTO_UDP }, udp('10.0.0.9', '10.0.0.1', { sport: 5000, dport: 53 }, concat(new Uint8Array(8)))));
    expect(decap.run(other).reasons).toEqual({ DECAP_PASS_NOT_TUNNEL: 1 });
  });
});

describe('second chance over IPv6', () => {
  const VIP6 = '::1';
  const OWNER6 = { address: '2001:db8:1::1', mac: '02:00:00:00:01:04' };
  const HOP6 = { address: '2001:db8:1::2', mac: '02:00:00:00:01:05' };
  let server: Server;
  let client: Socket;
  let port: number;
  let clientPort: number;
  let lb: LbHarness;
  let decap: DecapHarness;

  const segment6 = (sport: number, flags: number): Bytes => toLb(ETH_P_IPV6, ipv6({ src: VIP6, dst: VIP6, proto: PROTO_TCP }, tcp(VIP6, VIP6, { sport, dport: port, flags })));
  /** Outer IPv6 destination, the GUE header's Hlen and the hop's fields. */
  const outer6 = (frame: Bytes) => {
    const { offset } = l3Offset(frame);
    expect(frame[offset + 6]).toBe(PROTO_UDP);
    const g = offset + 40 + 8;
    const h = g + 4;
    return { dst: ipText(frame.subarray(offset + 24, offset + 40)), hlen: frame[g]! & 0x1f, hopsLeft: frame[h + 2]!, family: frame[h + 3]!, hop: ipText(frame.subarray(h + 4, h + 20)) };
  };

  beforeAll(async () => {
    ({ server, client, port, clientPort } = await heldConnection(VIP6));
    lb = new LbHarness();
    const owners = [OWNER6.address, HOP6.address];
    lb.program(
      {
        vips: [{ name: 'gue6', keys: [{ address: VIP6, port, protocol: 'TCP' }], features: featuresOf({ mode: 'gue', affinity: 'fiveTuple', flowTable: false }), table: tableOfSlots(SIZE, owners, { slots: new Uint32Array(SIZE).fill(0), secondHops: new Uint32Array(SIZE).fill(1) }) }],
        backends: new Map([OWNER6, HOP6].map((b) => [b.address, { address: b.address, family: 6 as const, mac: b.mac }])),
      },
      CONTROL,
    );
    decap = new DecapHarness();
    applyDecapVips(decap.maps, [VIP6]);
  });

  afterAll(() => {
    client?.destroy();
    server?.close();
    lb?.close();
    decap?.close();
  });

  it('GUE over IPv6 names the second hop in 16 bytes (Hlen 5); a known flow is delivered, an unknown one goes on to the hop', () => {
    const out = lb.run(segment6(clientPort, 0x10));
    expect(out.reasons).toMatchObject({ FWD_GUE: 1 });
    expect(outer6(out.out)).toEqual({ dst: OWNER6.address, hlen: 5, hopsLeft: 1, family: 10, hop: HOP6.address });
    const known = decap.run(out.out);
    expect(known.reasons).toEqual({ DECAP_OK: 1, EV_SC_LOCAL: 1 });
    const unknown = decap.run(lb.run(segment6(40003, 0x10)).out);
    expect(unknown.reasons).toEqual({ DECAP_FWD_SECOND_HOP: 1 });
    expect(outer6(unknown.out)).toMatchObject({ dst: HOP6.address, hopsLeft: 0 });
    const syn = decap.run(lb.run(segment6(40004, 0x02)).out);
    expect(syn.reasons).toEqual({ DECAP_OK: 1, EV_SC_SYN: 1 });
  });
});
