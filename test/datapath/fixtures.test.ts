// fixtures.test.ts: the load balancer's behaviour as a fixture table. Each
// row: description, input frame, expected verdict, expected output bytes
// (computed independently in TypeScript) and the reason counters that must
// move. Runs the real program in the kernel with BPF_PROG_TEST_RUN.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { portsWord } from '../../src/core/flow-hash.js';
import type { ReasonName } from '../../src/bpf/abi.js';
import { planDatapath } from '../../src/core/datapath-plan.js';
import {
  be16,
  concat,
  ETH_P_IP,
  ETH_P_IPV6,
  ethernet,
  icmp4,
  icmp4ChecksumOk,
  icmp6,
  icmp6ChecksumOk,
  ipv4,
  ipv4HeaderChecksumOk,
  ipv6,
  ipv6FragmentBody,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
  tcp,
  udp,
  type Bytes,
  type VlanTag,
} from '../../lab/packet.js';
import type { LbHarness, Verdict } from './lib/harness.js';
import {
  baseState,
  entropyOf,
  expectIpip,
  expectL2dsr,
  expectTooBig,
  fixtureLb,
  MAC_ROUTER,
  predictBackend,
  programFixture,
  toLb,
  VIPS,
  type VipName,
} from './lib/fixture.js';

const CLIENT4 = '192.0.2.10';
const CLIENT6 = '2001:db8:ff::10';

function tcp4(dst: string, dport: number, o: { sport?: number; vlans?: VlanTag[]; payload?: Bytes; df?: boolean; options?: Bytes; src?: string } = {}): Bytes {
  const src = o.src ?? CLIENT4;
  return toLb(ETH_P_IP, ipv4({ src, dst, proto: PROTO_TCP, df: o.df ?? true, options: o.options }, tcp(src, dst, { sport: o.sport ?? 40000, dport }, o.payload)), o.vlans);
}

function udp4(dst: string, dport: number, o: { sport?: number; payload?: Bytes } = {}): Bytes {
  return toLb(ETH_P_IP, ipv4({ src: CLIENT4, dst, proto: PROTO_UDP }, udp(CLIENT4, dst, { sport: o.sport ?? 40001, dport }, o.payload)));
}

function tcp6(dst: string, dport: number, o: { sport?: number; payload?: Bytes; extensions?: { type: number; body?: Bytes }[] } = {}): Bytes {
  return toLb(ETH_P_IPV6, ipv6({ src: CLIENT6, dst, proto: PROTO_TCP, extensions: o.extensions }, tcp(CLIENT6, dst, { sport: o.sport ?? 40002, dport }, o.payload)));
}

function udp6(dst: string, dport: number, o: { sport?: number; payload?: Bytes } = {}): Bytes {
  return toLb(ETH_P_IPV6, ipv6({ src: CLIENT6, dst, proto: PROTO_UDP }, udp(CLIENT6, dst, { sport: o.sport ?? 40003, dport }, o.payload)));
}

function udp6ext(dst: string, dport: number, extensions: { type: number; body?: Bytes }[]): Bytes {
  return toLb(ETH_P_IPV6, ipv6({ src: CLIENT6, dst, proto: PROTO_UDP, extensions }, udp(CLIENT6, dst, { sport: 40003, dport })));
}

/** Expected IPIP output for a frame of a VIP, predicted from the flow. */
function ipipFor(vip: VipName, frame: Bytes, src: string, sport: number, proto: number): Bytes {
  const v = VIPS[vip];
  const { index, hash } = predictBackend(vip, { src, dst: v.address, sport, dport: v.port === 0 ? 8080 : v.port, proto });
  return expectIpip(frame, index, entropyOf(hash, sport, v.port === 0 ? 8080 : v.port));
}

function dsrFor(vip: VipName, frame: Bytes, src: string, sport: number, proto: number): Bytes {
  const v = VIPS[vip];
  const { index } = predictBackend(vip, { src, dst: v.address, sport, dport: v.port, proto });
  return expectL2dsr(frame, index);
}

const payload = (n: number): Bytes => Uint8Array.from({ length: n }, (_, i) => i & 0xff);
const ipOptions = Uint8Array.of(1, 1, 1, 0, 0x94, 4, 0, 0); // NOP NOP NOP EOL, router alert

interface Fixture {
  description: string;
  input: Bytes;
  verdict: Verdict;
  output: 'unchanged' | Bytes | null;
  reasons: Partial<Record<ReasonName, number>>;
}

function fixtures(): Fixture[] {
  const f: Fixture[] = [];
  const fwd = (description: string, input: Bytes, output: Bytes, reason: ReasonName, extra: Partial<Record<ReasonName, number>> = {}): void => {
    f.push({ description, input, verdict: 'TX', output, reasons: { [reason]: 1, ...extra } });
  };
  const pass = (description: string, input: Bytes, reason: ReasonName): void => {
    f.push({ description, input, verdict: 'PASS', output: 'unchanged', reasons: { [reason]: 1 } });
  };
  const drop = (description: string, input: Bytes, reason: ReasonName): void => {
    f.push({ description, input, verdict: 'DROP', output: null, reasons: { [reason]: 1 } });
  };

  // forwarding, both families and modes
  let x = tcp4('10.100.0.1', 80);
  fwd('IPv4 TCP SYN to an IPIP VIP', x, ipipFor('v4TcpIpip', x, CLIENT4, 40000, PROTO_TCP), 'FWD_IPIP');
  x = udp4('10.100.0.1', 53, { payload: payload(30) });
  fwd('IPv4 UDP to an IPIP VIP', x, ipipFor('v4UdpIpip', x, CLIENT4, 40001, PROTO_UDP), 'FWD_IPIP');
  x = tcp4('10.100.0.2', 80, { payload: payload(100) });
  fwd('IPv4 TCP to an L2 DSR VIP', x, dsrFor('v4TcpDsr', x, CLIENT4, 40000, PROTO_TCP), 'FWD_L2DSR');
  x = udp4('10.100.0.2', 53);
  fwd('IPv4 UDP to an L2 DSR VIP', x, dsrFor('v4UdpDsr', x, CLIENT4, 40001, PROTO_UDP), 'FWD_L2DSR');
  x = tcp6('2001:db8:100::1', 443);
  fwd('IPv6 TCP to an IPIP VIP', x, ipipFor('v6TcpIpip', x, CLIENT6, 40002, PROTO_TCP), 'FWD_IPIP');
  x = udp6('2001:db8:100::1', 443, { payload: payload(77) });
  fwd('IPv6 UDP to an IPIP VIP', x, ipipFor('v6UdpIpip', x, CLIENT6, 40003, PROTO_UDP), 'FWD_IPIP');
  x = tcp6('2001:db8:100::2', 80);
  fwd('IPv6 TCP to an L2 DSR VIP', x, dsrFor('v6TcpDsr', x, CLIENT6, 40002, PROTO_TCP), 'FWD_L2DSR');
  x = udp6('2001:db8:100::2', 53);
  fwd('IPv6 UDP to an L2 DSR VIP', x, dsrFor('v6UdpDsr', x, CLIENT6, 40003, PROTO_UDP), 'FWD_L2DSR');
  x = tcp4('10.100.0.7', 80);
  fwd('IPv4 VIP with IPv6 backends: 4-in-6', x, ipipFor('v4OverV6', x, CLIENT4, 40000, PROTO_TCP), 'FWD_IPIP');
  x = tcp6('2001:db8:100::3', 80);
  fwd('IPv6 VIP with IPv4 backends: 6-in-4', x, ipipFor('v6OverV4', x, CLIENT6, 40002, PROTO_TCP), 'FWD_IPIP');

  // source-IP affinity on a port-0 wildcard VIP
  x = tcp4('10.100.0.3', 8080, { sport: 50000 });
  fwd('wildcard VIP, source-IP affinity', x, ipipFor('v4Wildcard', x, CLIENT4, 50000, PROTO_TCP), 'FWD_IPIP');

  // VLANs and options
  x = tcp4('10.100.0.1', 80, { vlans: [{ tci: 100 }] });
  fwd('802.1Q tagged, IPIP keeps the tag', x, ipipFor('v4TcpIpip', x, CLIENT4, 40000, PROTO_TCP), 'FWD_IPIP');
  x = tcp4('10.100.0.1', 80, { vlans: [{ tci: 10 }, { tci: 200 }] });
  fwd('802.1ad + 802.1Q (QinQ), IPIP keeps both tags', x, ipipFor('v4TcpIpip', x, CLIENT4, 40000, PROTO_TCP), 'FWD_IPIP');
  x = tcp4('10.100.0.2', 80, { vlans: [{ tci: 10 }, { tci: 200 }] });
  fwd('QinQ to an L2 DSR VIP', x, dsrFor('v4TcpDsr', x, CLIENT4, 40000, PROTO_TCP), 'FWD_L2DSR');
  x = tcp4('10.100.0.1', 80, { options: ipOptions });
  fwd('IPv4 with options', x, ipipFor('v4TcpIpip', x, CLIENT4, 40000, PROTO_TCP), 'FWD_IPIP');
  x = tcp6('2001:db8:100::1', 443, { extensions: [{ type: 0 }, { type: 60 }, { type: 43, body: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }] });
  fwd('IPv6 with hop-by-hop, destination options and routing headers', x, ipipFor('v6TcpIpip', x, CLIENT6, 40002, PROTO_TCP), 'FWD_IPIP');
  {
    // docs/datapath.md: at most 4 extension headers are walked (XDPLB_MAX_IPV6_EXT_HDRS).
    // Regression (issue 11, item 10): exactly 4 was passed as malformed.
    const chain = (n: number) => [{ type: 0 }, ...Array.from({ length: n - 1 }, () => ({ type: 60 }))];
    x = tcp6('2001:db8:100::1', 443, { extensions: chain(4) });
    fwd('IPv6 with 4 extension headers (the documented limit): forwarded', x, ipipFor('v6TcpIpip', x, CLIENT6, 40002, PROTO_TCP), 'FWD_IPIP');
    x = udp6ext('2001:db8:100::2', 53, chain(4));
    fwd('IPv6 UDP with 4 extension headers to an L2 DSR VIP: forwarded', x, dsrFor('v6UdpDsr', x, CLIENT6, 40003, PROTO_UDP), 'FWD_L2DSR');
    x = toLb(ETH_P_IPV6, ipv6({ src: CLIENT6, dst: '2001:db8:100::1', proto: PROTO_UDP, extensions: [...chain(3), { type: 44, body: ipv6FragmentBody(0, false, 9) }] }, udp(CLIENT6, '2001:db8:100::1', { sport: 40003, dport: 443 }, payload(10))));
    fwd('IPv6 with 3 extension headers then an atomic fragment header: forwarded', x, ipipFor('v6UdpIpip', x, CLIENT6, 40003, PROTO_UDP), 'FWD_IPIP');
    pass('IPv6 with 5 extension headers (over the limit): passed as malformed', tcp6('2001:db8:100::1', 443, { extensions: chain(5) }), 'PASS_MALFORMED');
    pass('IPv6 with 4 extension headers then a fragment header (5): passed as malformed',
      toLb(ETH_P_IPV6, ipv6({ src: CLIENT6, dst: '2001:db8:100::1', proto: PROTO_UDP, extensions: [...chain(4), { type: 44, body: ipv6FragmentBody(0, false, 9) }] }, udp(CLIENT6, '2001:db8:100::1', { sport: 40003, dport: 443 }, payload(10)))),
      'PASS_MALFORMED');
  }
  {
    // Ethernet padding after a short IP datagram stays where it is
    const padded = concat(tcp4('10.100.0.1', 80), new Uint8Array(6));
    fwd('frame with trailing padding', padded, ipipFor('v4TcpIpip', padded, CLIENT4, 40000, PROTO_TCP), 'FWD_IPIP');
  }

  // not for us
  pass('IPv4 to a non-VIP address', tcp4('10.200.0.1', 80), 'PASS_NOT_VIP');
  pass('IPv6 to a non-VIP address', udp6('2001:db8:200::1', 53), 'PASS_NOT_VIP');
  pass('VIP address, port without VIP', tcp4('10.100.0.1', 22), 'PASS_NOT_VIP');
  pass('VIP address, protocol without VIP', toLb(ETH_P_IP, ipv4({ src: CLIENT4, dst: '10.100.0.1', proto: 47 }, payload(40))), 'PASS_NOT_VIP');
  pass('ICMP echo to a VIP', toLb(ETH_P_IP, ipv4({ src: CLIENT4, dst: '10.100.0.1', proto: PROTO_ICMP }, icmp4(8, 0, Uint8Array.of(0, 1, 0, 1), payload(16)))), 'PASS_NOT_VIP');
  pass('ARP', ethernet({ dst: 'ff:ff:ff:ff:ff:ff', src: MAC_ROUTER, type: 0x0806 }, payload(28)), 'PASS_NOT_IP');
  pass('VLAN-tagged ARP', ethernet({ dst: 'ff:ff:ff:ff:ff:ff', src: MAC_ROUTER, type: 0x0806, vlans: [{ tci: 5 }] }, payload(28)), 'PASS_NOT_IP');

  // truncated at every layer
  const full4 = tcp4('10.100.0.1', 80);
  const full6 = tcp6('2001:db8:100::1', 443);
  // (BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, as drivers never deliver them)
  pass('Ethernet header only, IPv4 ethertype', full4.subarray(0, 14), 'PASS_MALFORMED');
  pass('truncated VLAN tag', tcp4('10.100.0.1', 80, { vlans: [{ tci: 1 }] }).subarray(0, 16), 'PASS_MALFORMED');
  pass('truncated IPv4 header', full4.subarray(0, 14 + 12), 'PASS_MALFORMED');
  pass('IPv4 total length beyond the frame', full4.subarray(0, 14 + 30), 'PASS_MALFORMED');
  pass('truncated IPv6 header', full6.subarray(0, 14 + 30), 'PASS_MALFORMED');
  {
    const ext = tcp6('2001:db8:100::1', 443, { extensions: [{ type: 60 }] });
    const cut = Uint8Array.from(ext.subarray(0, 14 + 40 + 1));
    cut[14 + 4] = 0;
    cut[14 + 5] = 1; // payload length 1: the extension header does not fit
    pass('truncated IPv6 extension header', cut, 'PASS_MALFORMED');
  }
  {
    const cut = Uint8Array.from(full4.subarray(0, 14 + 20 + 2));
    cut[14 + 3] = 22; // total length 22: only 2 bytes of TCP
    cut.set(be16(0), 14 + 10);
    const ck = ipv4HeaderFix(cut, 14);
    pass('TCP header without both ports', ck, 'PASS_MALFORMED');
  }
  {
    const cut = ipv4Frame('10.100.0.1', PROTO_TCP, tcp(CLIENT4, '10.100.0.1', { sport: 1, dport: 80 }).subarray(0, 10));
    drop('truncated TCP header to a VIP', cut, 'DROP_MALFORMED');
  }
  {
    const cut = ipv4Frame('10.100.0.1', PROTO_UDP, udp(CLIENT4, '10.100.0.1', { sport: 1, dport: 53 }).subarray(0, 6));
    drop('truncated UDP header to a VIP', cut, 'DROP_MALFORMED');
  }
  {
    const seg = tcp(CLIENT6, '2001:db8:100::1', { sport: 1, dport: 443 }).subarray(0, 12);
    drop('truncated TCP header in IPv6 to a VIP', toLb(ETH_P_IPV6, ipv6({ src: CLIENT6, dst: '2001:db8:100::1', proto: PROTO_TCP }, seg)), 'DROP_MALFORMED');
  }
  pass('bad IHL (4)', toLb(ETH_P_IP, ipv4({ src: CLIENT4, dst: '10.100.0.1', proto: PROTO_TCP, ihl: 4 }, tcp(CLIENT4, '10.100.0.1', { sport: 1, dport: 80 }))), 'PASS_MALFORMED');
  pass('IHL beyond the frame (15)', toLb(ETH_P_IP, ipv4({ src: CLIENT4, dst: '10.100.0.1', proto: PROTO_TCP, ihl: 15 }, payload(8))), 'PASS_MALFORMED');
  pass('IP version 5 in an IPv4 frame', (() => { const b = Uint8Array.from(full4); b[14] = 0x55; return b; })(), 'PASS_MALFORMED');
  drop('bad TCP data offset (4) to a VIP', ipv4Frame('10.100.0.1', PROTO_TCP, tcp(CLIENT4, '10.100.0.1', { sport: 1, dport: 80, doff: 4 })), 'DROP_MALFORMED');
  drop('TCP data offset beyond the datagram to a VIP', ipv4Frame('10.100.0.1', PROTO_TCP, tcp(CLIENT4, '10.100.0.1', { sport: 1, dport: 80, doff: 15 })), 'DROP_MALFORMED');
  drop('UDP length beyond the datagram to a VIP', ipv4Frame('10.100.0.1', PROTO_UDP, udp(CLIENT4, '10.100.0.1', { sport: 1, dport: 53, length: 200 })), 'DROP_MALFORMED');
  drop('UDP length below 8 to a VIP', ipv4Frame('10.100.0.1', PROTO_UDP, udp(CLIENT4, '10.100.0.1', { sport: 1, dport: 53, length: 4 })), 'DROP_MALFORMED');

  // no usable backend
  drop('VIP without a table', tcp4('10.100.0.4', 80), 'DROP_NO_BACKEND');
  drop('VIP with an empty table', tcp4('10.100.0.5', 80), 'DROP_NO_BACKEND');
  drop('backend without a MAC', tcp4('10.100.0.6', 80), 'DROP_BACKEND_UNRESOLVED');
  drop('backend marked invalid', tcp4('10.100.0.6', 81), 'DROP_BACKEND_UNRESOLVED');

  // ICMP errors about VIP flows go to the flow's backend
  {
    const original = ipv4({ src: '10.100.0.1', dst: CLIENT4, proto: PROTO_TCP, df: true }, tcp('10.100.0.1', CLIENT4, { sport: 80, dport: 40000 }, payload(1400)));
    const err = toLb(ETH_P_IP, ipv4({ src: '198.51.100.1', dst: '10.100.0.1', proto: PROTO_ICMP }, icmp4(3, 4, concat(be16(0), be16(1400)), original.subarray(0, 28))));
    const { index, hash } = predictBackend('v4TcpIpip', { src: CLIENT4, dst: '10.100.0.1', sport: 40000, dport: 80, proto: PROTO_TCP });
    fwd('ICMP frag-needed quoting a VIP flow', err, expectIpip(err, index, entropyOf(hash, 40000, 80)), 'FWD_ICMP_ERROR');
    const errDsr = toLb(ETH_P_IP, ipv4({ src: '198.51.100.1', dst: '10.100.0.2', proto: PROTO_ICMP }, icmp4(3, 4, concat(be16(0), be16(1400)),
      ipv4({ src: '10.100.0.2', dst: CLIENT4, proto: PROTO_TCP }, tcp('10.100.0.2', CLIENT4, { sport: 80, dport: 40000 })).subarray(0, 28))));
    fwd('ICMP frag-needed quoting an L2 DSR VIP flow', errDsr, dsrFor('v4TcpDsr', errDsr, CLIENT4, 40000, PROTO_TCP), 'FWD_ICMP_ERROR');
    const other = toLb(ETH_P_IP, ipv4({ src: '198.51.100.1', dst: '10.100.0.1', proto: PROTO_ICMP }, icmp4(3, 4, concat(be16(0), be16(1400)),
      ipv4({ src: '10.100.0.1', dst: CLIENT4, proto: PROTO_TCP }, tcp('10.100.0.1', CLIENT4, { sport: 22, dport: 40000 })).subarray(0, 28))));
    pass('ICMP frag-needed quoting a non-VIP port', other, 'PASS_NOT_VIP');
    pass('ICMP frag-needed with a truncated quote', toLb(ETH_P_IP, ipv4({ src: '198.51.100.1', dst: '10.100.0.1', proto: PROTO_ICMP }, icmp4(3, 4, concat(be16(0), be16(1400)), original.subarray(0, 10)))), 'PASS_MALFORMED');
  }
  {
    const original = ipv6({ src: '2001:db8:100::1', dst: CLIENT6, proto: PROTO_TCP }, tcp('2001:db8:100::1', CLIENT6, { sport: 443, dport: 40002 }, payload(1400)));
    const err = toLb(ETH_P_IPV6, ipv6({ src: '2001:db8:ee::1', dst: '2001:db8:100::1', proto: PROTO_ICMPV6 }, icmp6('2001:db8:ee::1', '2001:db8:100::1', 2, 0, Uint8Array.of(0, 0, 5, 0), original.subarray(0, 200))));
    const { index, hash } = predictBackend('v6TcpIpip', { src: CLIENT6, dst: '2001:db8:100::1', sport: 40002, dport: 443, proto: PROTO_TCP });
    fwd('ICMPv6 packet-too-big quoting a VIP flow', err, expectIpip(err, index, entropyOf(hash, 40002, 443)), 'FWD_ICMP_ERROR');
  }

  // MTU (1500 toward backends): IPIP of a full-size packet does not fit
  {
    const big = tcp4('10.100.0.1', 80, { payload: payload(1460) });
    const reply = expectTooBig(big, CLIENT4, '10.100.0.1', 1480);
    f.push({ description: 'over MTU, DF set: ICMP frag-needed to the client', input: big, verdict: 'TX', output: reply, reasons: { ICMP_TOO_BIG_SENT: 1 } });
    drop('over MTU, DF clear: dropped', tcp4('10.100.0.1', 80, { payload: payload(1460), df: false }), 'DROP_TOO_BIG');
    const big6 = tcp6('2001:db8:100::1', 443, { payload: payload(1440) });
    f.push({ description: 'over MTU, IPv6: packet-too-big to the client', input: big6, verdict: 'TX', output: expectTooBig(big6, CLIENT6, '2001:db8:100::1', 1460), reasons: { ICMP_TOO_BIG_SENT: 1 } });
    const bigTagged = tcp4('10.100.0.1', 80, { payload: payload(1460), vlans: [{ tci: 7 }] });
    f.push({ description: 'over MTU on a VLAN: the reply keeps the tag', input: bigTagged, verdict: 'TX', output: expectTooBig(bigTagged, CLIENT4, '10.100.0.1', 1480), reasons: { ICMP_TOO_BIG_SENT: 1 } });
    const bigOpts = tcp4('10.100.0.1', 80, { payload: payload(1440), options: ipOptions });
    f.push({ description: 'over MTU with IPv4 options: the quote includes them', input: bigOpts, verdict: 'TX', output: expectTooBig(bigOpts, CLIENT4, '10.100.0.1', 1480), reasons: { ICMP_TOO_BIG_SENT: 1 } });
    const dsrBig = tcp4('10.100.0.2', 80, { payload: payload(1460) });
    fwd('full-size packet to an L2 DSR VIP: no MTU check', dsrBig, dsrFor('v4TcpDsr', dsrBig, CLIENT4, 40000, PROTO_TCP), 'FWD_L2DSR');
  }

  // fragments: hashed on addresses only, owner = lowest-port VIP of the address/protocol
  {
    const frag = { src: CLIENT4, dst: '10.100.0.1', sport: 0, dport: 0, proto: PROTO_UDP };
    const { index, hash } = predictBackend('v4UdpIpip', frag, { fragment: true });
    const first = toLb(ETH_P_IP, ipv4({ src: CLIENT4, dst: '10.100.0.1', proto: PROTO_UDP, mf: true, id: 77 }, udp(CLIENT4, '10.100.0.1', { sport: 40001, dport: 53, length: 1008 }, payload(96))));
    fwd('IPv4 first fragment', first, expectIpip(first, index, hash), 'FWD_IPIP', { EV_FRAGMENT: 1 });
    const later = toLb(ETH_P_IP, ipv4({ src: CLIENT4, dst: '10.100.0.1', proto: PROTO_UDP, fragOffset: 13, id: 77 }, payload(64)));
    fwd('IPv4 later fragment: same backend', later, expectIpip(later, index, hash), 'FWD_IPIP', { EV_FRAGMENT: 1 });
    pass('IPv4 fragment to a non-VIP address', toLb(ETH_P_IP, ipv4({ src: CLIENT4, dst: '10.200.0.1', proto: PROTO_UDP, fragOffset: 13 }, payload(64))), 'PASS_NOT_VIP');
    const f6 = predictBackend('v6UdpIpip', { src: CLIENT6, dst: '2001:db8:100::1', sport: 0, dport: 0, proto: PROTO_UDP }, { fragment: true });
    const first6 = toLb(ETH_P_IPV6, ipv6({ src: CLIENT6, dst: '2001:db8:100::1', proto: PROTO_UDP, extensions: [{ type: 44, body: ipv6FragmentBody(0, true, 9) }] }, udp(CLIENT6, '2001:db8:100::1', { sport: 40003, dport: 443, length: 1008 }, payload(96))));
    fwd('IPv6 first fragment', first6, expectIpip(first6, f6.index, f6.hash), 'FWD_IPIP', { EV_FRAGMENT: 1 });
    const later6 = toLb(ETH_P_IPV6, ipv6({ src: CLIENT6, dst: '2001:db8:100::1', proto: PROTO_UDP, extensions: [{ type: 44, body: ipv6FragmentBody(13, false, 9) }] }, payload(64)));
    fwd('IPv6 later fragment: same backend', later6, expectIpip(later6, f6.index, f6.hash), 'FWD_IPIP', { EV_FRAGMENT: 1 });
    const atomic = toLb(ETH_P_IPV6, ipv6({ src: CLIENT6, dst: '2001:db8:100::1', proto: PROTO_UDP, extensions: [{ type: 44, body: ipv6FragmentBody(0, false, 9) }] }, udp(CLIENT6, '2001:db8:100::1', { sport: 40003, dport: 443 }, payload(10))));
    fwd('IPv6 atomic fragment: an ordinary packet', atomic, ipipFor('v6UdpIpip', atomic, CLIENT6, 40003, PROTO_UDP), 'FWD_IPIP');
  }
  return f;
}

function ipv4Frame(dst: string, proto: number, l4: Bytes): Bytes {
  return toLb(ETH_P_IP, ipv4({ src: CLIENT4, dst, proto }, l4));
}

/** Recompute the IPv4 header checksum at `at` after editing the header. */
function ipv4HeaderFix(frame: Uint8Array, at: number): Uint8Array {
  frame[at + 10] = 0;
  frame[at + 11] = 0;
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += (frame[at + i]! << 8) | frame[at + i + 1]!;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  frame[at + 10] = c >> 8;
  frame[at + 11] = c & 0xff;
  return frame;
}

describe('xdp_lb fixture table', () => {
  let h: LbHarness;
  beforeAll(() => {
    h = fixtureLb();
  });
  afterAll(() => h.close());
  // tests that change the state put the base state back (a table swap waits
  // for an RCU grace period in the kernel, so re-programming is not free)
  afterEach((ctx) => {
    if (ctx.task.name.startsWith('state:')) programFixture(h);
  });

  for (const fx of fixtures()) {
    it(fx.description, () => {
      const r = h.run(fx.input);
      expect(r.verdict).toBe(fx.verdict);
      expect(r.reasons).toEqual(fx.reasons);
      if (fx.output === 'unchanged') expect(Buffer.from(r.out).equals(Buffer.from(fx.input))).toBe(true);
      else if (fx.output !== null) expect(r.out.toString('hex')).toBe(Buffer.from(fx.output).toString('hex'));
      if (fx.verdict === 'TX') checkChecksums(r.out);
    });
  }

  it('the maps read back as the fixture state: planning it again writes nothing', () => {
    expect(planDatapath(h.writer.readImage(), baseState(), h.writer.capacities()).ops).toEqual([]);
  });

  it('source-IP affinity: every connection of a client lands on one backend', () => {
    const backends = new Set<string>();
    for (let sport = 1000; sport < 1064; sport++) {
      const r = h.run(tcp4('10.100.0.3', 1000 + (sport % 7), { sport }), false);
      expect(r.verdict).toBe('TX');
      backends.add(r.out.subarray(0, 6).toString('hex') + r.out.subarray(30, 34).toString('hex'));
    }
    expect(backends.size).toBe(1);
  });

  it('state: flow table: an established flow keeps its backend across a table change', () => {
    const flowA = tcp4('10.100.0.9', 80, { sport: 41000 });
    const flowB = tcp4('10.100.0.9', 80, { sport: 41001 });
    let r = h.run(flowA);
    expect(r.reasons).toEqual({ FWD_IPIP: 1, EV_FLOW_TABLE_MISS: 1 });
    expect(r.out.toString('hex')).toBe(Buffer.from(ipipFor('flowTable', flowA, CLIENT4, 41000, PROTO_TCP)).toString('hex'));

    // the table now sends everything to backend 1 (same size: inner map replaced in place)
    programFixture(h, baseState({ vips: { flowTable: { backends: [1] } } }));
    const { hash } = predictBackend('flowTable', { src: CLIENT4, dst: '10.100.0.9', sport: 41000, dport: 80, proto: PROTO_TCP });
    r = h.run(flowA);
    expect(r.reasons).toEqual({ FWD_IPIP: 1, EV_FLOW_TABLE_HIT: 1 });
    expect(r.out.toString('hex')).toBe(Buffer.from(expectIpip(flowA, 0, entropyOf(hash, 41000, 80))).toString('hex'));

    // a new flow follows the new table
    const hb = predictBackend('flowTable', { src: CLIENT4, dst: '10.100.0.9', sport: 41001, dport: 80, proto: PROTO_TCP }).hash;
    r = h.run(flowB);
    expect(r.reasons).toEqual({ FWD_IPIP: 1, EV_FLOW_TABLE_MISS: 1 });
    expect(r.out.toString('hex')).toBe(Buffer.from(expectIpip(flowB, 1, entropyOf(hb, 41001, 80))).toString('hex'));

    // backend 0 no longer usable (its MAC unresolved: the agent writes its
    // entry invalid): the remembered flow falls back to the table
    programFixture(h, baseState({ vips: { flowTable: { backends: [1] } }, unresolved: [0] }));
    r = h.run(flowA);
    expect(r.reasons).toEqual({ FWD_IPIP: 1, EV_FLOW_TABLE_STALE: 1 });
    expect(r.out.toString('hex')).toBe(Buffer.from(expectIpip(flowA, 1, entropyOf(hash, 41000, 80))).toString('hex'));
    h.maps.flows.keys().forEach((k) => h.maps.flows.delete(k));
  });

  it('state: table resize: a new size moves the VIP to a fresh slot and frees the old one', () => {
    const state = baseState({ vips: { v4TcpIpip: { backends: [2], size: 509 } } });
    programFixture(h, state);
    const x = tcp4('10.100.0.1', 80);
    const r = h.run(x);
    const { hash } = predictBackend('v4TcpIpip', { src: CLIENT4, dst: '10.100.0.1', sport: 40000, dport: 80, proto: PROTO_TCP });
    expect(r.out.toString('hex')).toBe(Buffer.from(expectIpip(x, 2, entropyOf(hash, 40000, 80))).toString('hex'));
    // one outer slot per VIP with a table, none leaked
    const withTables = state.vips.filter((v) => v.table !== null).length;
    let used = 0;
    for (let s = 0; s < h.maps.tables.maxEntries; s++) if (h.maps.tables.lookup(Buffer.from(new Uint32Array([s]).buffer)) !== undefined) used++;
    expect(used).toBe(withTables);
  });

  it('ports word of the model matches the wire (sanity)', () => {
    expect(portsWord(0x1234, 0x5678)).toBe(0x78563412);
  });
});

/** Every IPv4 header and ICMP message in a transmitted frame has a valid checksum. */
function checkChecksums(out: Buffer): void {
  let at = 12;
  let type = out.readUInt16BE(at);
  while (type === 0x8100 || type === 0x88a8) {
    at += 4;
    type = out.readUInt16BE(at);
  }
  const l3 = at + 2;
  if (type === ETH_P_IP) {
    expect(ipv4HeaderChecksumOk(out, l3)).toBe(true);
    if (out[l3 + 9] === PROTO_ICMP) expect(icmp4ChecksumOk(out, l3 + 20, out.readUInt16BE(l3 + 2) - 20)).toBe(true);
    if (out[l3 + 9] === 4) expect(ipv4HeaderChecksumOk(out, l3 + 20)).toBe(true);
  } else if (type === ETH_P_IPV6 && out[l3 + 6] === PROTO_ICMPV6) {
    expect(icmp6ChecksumOk(out, l3)).toBe(true);
  }
}
