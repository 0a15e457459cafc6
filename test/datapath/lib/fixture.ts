// fixture.ts: the datapath state the fixture tests program (backends, VIPs,
// tables) and the TypeScript predictions of what the XDP program must emit
// for a frame: which backend, and the exact bytes of the IPIP, L2 DSR or
// ICMP frame, built with lab/packet.ts and src/core/flow-hash.ts.

import { flowHash, portsWord, type Affinity } from '../../../src/core/flow-hash.js';
import { BACKEND_NONE } from '../../../src/bpf/abi.js';
import { ipBytes, macBytes } from '../../../src/core/net.js';
import type { DatapathState, DatapathVip } from '../../../src/bpf/programmer.js';
import {
  be16,
  be32,
  concat,
  ETH_P_IP,
  ETH_P_IPV6,
  icmp4,
  icmp6,
  ipv4,
  ipv6,
  l3Offset,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_IPIP,
  PROTO_IPV6,
  type Bytes,
} from '../../../lab/packet.js';

export const MAC_LB = '02:00:00:00:00:02';
export const MAC_ROUTER = '02:00:00:00:00:01';
export const TABLE_SIZE = 251;

export const CONTROL = { srcMac: MAC_LB, mtu: 1500, v4SrcPrefix: '172.16.0.0/16', v6SrcPrefix: 'fd00:5eed::/96' };

export const BACKENDS = [
  { address: '10.1.0.1', mac: '02:00:00:00:01:01' },
  { address: '10.1.0.2', mac: '02:00:00:00:01:02' },
  { address: '10.1.0.3', mac: '02:00:00:00:01:03' },
  { address: '2001:db8:1::1', mac: '02:00:00:00:01:04' },
  { address: '2001:db8:1::2', mac: '02:00:00:00:01:05' },
  { address: '10.1.0.9', mac: null },
  { address: '10.1.0.10', mac: '02:00:00:00:01:07', valid: false },
] as const;

/** A table cycling over the given backend indices. */
export function cyclingTable(backends: readonly number[], size = TABLE_SIZE): { size: number; slots: Uint32Array } {
  const slots = new Uint32Array(size);
  for (let s = 0; s < size; s++) slots[s] = backends.length === 0 ? BACKEND_NONE : backends[s % backends.length]!;
  return { size, slots };
}

type VipSpec = Omit<DatapathVip, 'table'> & { backends: readonly number[] | null };

export const VIPS = {
  v4TcpIpip: { address: '10.100.0.1', port: 80, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', backends: [0, 1, 2] },
  v4UdpIpip: { address: '10.100.0.1', port: 53, proto: 'udp', mode: 'ipip', affinity: 'fiveTuple', backends: [0, 1, 2] },
  v4TcpDsr: { address: '10.100.0.2', port: 80, proto: 'tcp', mode: 'l2dsr', affinity: 'fiveTuple', backends: [0, 1, 2] },
  v4UdpDsr: { address: '10.100.0.2', port: 53, proto: 'udp', mode: 'l2dsr', affinity: 'fiveTuple', backends: [0, 1, 2] },
  v6TcpIpip: { address: '2001:db8:100::1', port: 443, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', backends: [3, 4] },
  v6UdpIpip: { address: '2001:db8:100::1', port: 443, proto: 'udp', mode: 'ipip', affinity: 'fiveTuple', backends: [3, 4] },
  v6TcpDsr: { address: '2001:db8:100::2', port: 80, proto: 'tcp', mode: 'l2dsr', affinity: 'fiveTuple', backends: [3, 4] },
  v6UdpDsr: { address: '2001:db8:100::2', port: 53, proto: 'udp', mode: 'l2dsr', affinity: 'fiveTuple', backends: [3, 4] },
  v4Wildcard: { address: '10.100.0.3', port: 0, proto: 'tcp', mode: 'ipip', affinity: 'sourceIp', backends: [0, 1, 2] },
  noTable: { address: '10.100.0.4', port: 80, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', backends: null },
  emptyTable: { address: '10.100.0.5', port: 80, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', backends: [] },
  unresolved: { address: '10.100.0.6', port: 80, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', backends: [5] },
  invalid: { address: '10.100.0.6', port: 81, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', backends: [6] },
  v4OverV6: { address: '10.100.0.7', port: 80, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', backends: [3, 4] },
  v6OverV4: { address: '2001:db8:100::3', port: 80, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', backends: [0, 1] },
  flowTable: { address: '10.100.0.9', port: 80, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', flowTable: true, backends: [0] },
} as const satisfies Record<string, VipSpec>;

export type VipName = keyof typeof VIPS;

export function baseState(overrides: Partial<Record<VipName, readonly number[] | null>> = {}): DatapathState {
  return {
    control: CONTROL,
    backends: BACKENDS.map((b) => ({ ...b })),
    vips: (Object.keys(VIPS) as VipName[]).map((name) => {
      const { backends, ...vip } = VIPS[name];
      const list = name in overrides ? overrides[name]! : backends;
      return { ...vip, table: list === null ? null : cyclingTable(list) };
    }),
  };
}

export interface FlowSpec {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
}

/** Backend index the datapath must pick for this flow on this VIP (table path). */
export function predictBackend(vip: VipName, flow: FlowSpec, opts: { fragment?: boolean } = {}): { index: number; hash: number } {
  const spec = VIPS[vip];
  const affinity: Affinity = opts.fragment === true ? 'sourceIp' : spec.affinity;
  const hash = flowHash({ src: ipBytes(flow.src), dst: ipBytes(flow.dst), sport: flow.sport, dport: flow.dport, proto: flow.proto }, affinity);
  const table = cyclingTable(spec.backends ?? []);
  return { index: table.slots[hash % table.size]!, hash };
}

function le32(n: number): Bytes {
  return Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
}

/** Outer IPv4 source for this entropy under CONTROL's 172.16.0.0/16. */
export function outerV4Src(entropy: number): Bytes {
  const e = le32(entropy);
  return Uint8Array.of(172, 16, e[2]!, e[3]!);
}

export function outerV6Src(entropy: number): Bytes {
  return concat(ipBytes('fd00:5eed::').subarray(0, 12), le32(entropy));
}

/** The flow's outer-source entropy: flow hash xor the packet's real ports word. */
export function entropyOf(hash: number, sport: number, dport: number): number {
  return (hash ^ portsWord(sport, dport)) >>> 0;
}

function l2Parts(input: Bytes): { tags: Bytes; offset: number; type: number } {
  const { offset, type } = l3Offset(input);
  return { tags: input.subarray(12, offset - 2), offset, type };
}

/** The IPIP frame the datapath must emit toward backend `index`. */
export function expectIpip(input: Bytes, index: number, entropy: number): Bytes {
  const be = BACKENDS[index]!;
  const { tags, offset, type } = l2Parts(input);
  const inner = input.subarray(offset);
  const innerV4 = type === ETH_P_IP;
  const innerLen = innerV4 ? (inner[2]! << 8) | inner[3]! : 40 + ((inner[4]! << 8) | inner[5]!);
  const tos = innerV4 ? inner[1]! : ((inner[0]! & 0xf) << 4) | (inner[1]! >> 4);
  const proto = innerV4 ? PROTO_IPIP : PROTO_IPV6;
  const beAddr = ipBytes(be.address);
  const outer =
    beAddr.length === 4
      ? ipv4({ src: outerV4Src(entropy), dst: beAddr, proto, tos, id: 0, df: true, ttl: 64, totalLength: innerLen + 20 }, inner)
      : ipv6({ src: outerV6Src(entropy), dst: beAddr, proto, trafficClass: tos, flowLabel: entropy & 0xfffff, hopLimit: 64, payloadLength: innerLen }, inner);
  return concat(macBytes(be.mac!), macBytes(MAC_LB), tags, be16(beAddr.length === 4 ? ETH_P_IP : ETH_P_IPV6), outer);
}

/** The L2 DSR frame: same bytes, new MACs. */
export function expectL2dsr(input: Bytes, index: number): Bytes {
  const out = Uint8Array.from(input);
  out.set(macBytes(BACKENDS[index]!.mac!), 0);
  out.set(macBytes(MAC_LB), 6);
  return out;
}

/** The ICMP frag-needed / packet-too-big reply to the client. */
export function expectTooBig(input: Bytes, client: string, vip: string, mtu: number): Bytes {
  const { tags, offset, type } = l2Parts(input);
  const l3 = input.subarray(offset);
  const macs = concat(input.subarray(6, 12), input.subarray(0, 6));
  if (type === ETH_P_IP) {
    const reply = ipv4({ src: vip, dst: client, proto: PROTO_ICMP, tos: 0xc0, id: 0, ttl: 64 }, icmp4(3, 4, concat(be16(0), be16(mtu)), l3.subarray(0, 548)));
    return concat(macs, tags, be16(ETH_P_IP), reply);
  }
  const reply = ipv6({ src: vip, dst: client, proto: PROTO_ICMPV6, hopLimit: 64 }, icmp6(vip, client, 2, 0, be32(mtu), l3.subarray(0, 1232)));
  return concat(macs, tags, be16(ETH_P_IPV6), reply);
}
