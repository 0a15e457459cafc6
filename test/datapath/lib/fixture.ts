// fixture.ts: the datapath state the fixture, fuzz and decap tests program
// (backends, VIPs, tables) as the DesiredDatapath the agent's planner takes,
// their one shared set-up (the load balancer loaded and programmed with it
// through planDatapath and MapWriter), and the TypeScript predictions of what
// the XDP program must emit for a frame: which backend (also with alternates
// and backends down), and the exact bytes of the IPIP, L2 DSR or ICMP frame,
// built with lab/packet.ts and src/core/flow-hash.ts.

import { flowHash, portsWord, type Affinity } from '../../../src/core/flow-hash.js';
import type { ControlSettings } from '../../../src/bpf/map-writer.js';
import { NO_BACKEND_INDEX, type BackendImage, type DesiredDatapath, type DesiredVip, type Plan } from '../../../src/core/datapath-plan.js';
import { featuresOf, tableOfSlots } from '../../../src/core/desired-state.js';
import { ipBytes, macBytes } from '../../../src/core/net.js';
import {
  be16,
  be32,
  concat,
  ethernet,
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
  type VlanTag,
} from '../../../lab/packet.js';
import { LbHarness } from './harness.js';

export const MAC_LB = '02:00:00:00:00:02';
export const MAC_ROUTER = '02:00:00:00:00:01';
export const TABLE_SIZE = 251;
/** XDPLB_FALLBACK_PROBES of bpf/include/constants.h (checked by abi.test.ts). */
export const FALLBACK_PROBES = 4;

export const CONTROL: ControlSettings = { srcMac: MAC_LB, mtu: 1500, v4SrcPrefix: '172.16.0.0/16', v6SrcPrefix: 'fd00:5eed::/96' };

/**
 * The fixture's backends; a VIP names them by position in this list (the
 * kernel's backend indices are the planner's to choose). mac null: not
 * resolved, which is the one way the agent's path writes an entry that is
 * not valid (BACKEND_F_VALID clear, no MAC).
 */
export const BACKENDS = [
  { address: '10.1.0.1', mac: '02:00:00:00:01:01' },
  { address: '10.1.0.2', mac: '02:00:00:00:01:02' },
  { address: '10.1.0.3', mac: '02:00:00:00:01:03' },
  { address: '2001:db8:1::1', mac: '02:00:00:00:01:04' },
  { address: '2001:db8:1::2', mac: '02:00:00:00:01:05' },
  { address: '10.1.0.9', mac: null },
  { address: '10.1.0.10', mac: null },
] as const;

/** An Ethernet frame from the router to the load balancer. */
export function toLb(type: number, payload: Bytes, vlans?: VlanTag[]): Bytes {
  return ethernet({ dst: MAC_LB, src: MAC_ROUTER, type, vlans }, payload);
}

/** The datapath features of a VIP, as the agent computes them (src/core/desired-state.ts featuresOf): the one place tests build them. */
export function vipFeatures(v: { mode: 'ipip' | 'l2dsr'; affinity: Affinity; flowTable?: boolean }): DesiredVip['features'] {
  return featuresOf({ mode: v.mode, affinity: v.affinity, flowTable: v.flowTable === true });
}

/** A table cycling over the given backends (positions in BACKENDS): slot s -> backends[s % n]; null when there is none (the agent programs no table then). */
export function cyclingTable(backends: readonly number[], size = TABLE_SIZE): NonNullable<DesiredVip['table']> | null {
  if (backends.length === 0) return null;
  return tableOfSlots(size, backends.map((i) => BACKENDS[i]!.address), { slots: Uint32Array.from({ length: size }, (_, s) => s % backends.length) });
}

interface VipSpec {
  address: string;
  /** 0 = every port of proto. */
  port: number;
  proto: 'tcp' | 'udp';
  mode: 'ipip' | 'l2dsr';
  affinity: Affinity;
  flowTable?: boolean;
  /** Positions in BACKENDS; null or empty: no table. */
  backends: readonly number[] | null;
}

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

export interface StateChanges {
  /** Per VIP: other backends (positions in BACKENDS) and/or another table size. */
  vips?: Partial<Record<VipName, { backends?: readonly number[] | null; size?: number }>>;
  /** Backends (positions in BACKENDS) whose MAC is no longer resolved. */
  unresolved?: readonly number[];
  /** Backends (positions in BACKENDS) marked down: the datapath routes around them. */
  down?: readonly number[];
}

/** The fixture state (every VIP of VIPS, every backend of BACKENDS) with `changes`. */
export function baseState(changes: StateChanges = {}): DesiredDatapath {
  const backends = new Map<string, BackendImage>();
  BACKENDS.forEach((b, i) => {
    const mac = changes.unresolved?.includes(i) === true ? null : b.mac;
    backends.set(b.address, { address: b.address, family: b.address.includes(':') ? 6 : 4, mac });
  });
  const vips = (Object.keys(VIPS) as VipName[]).map((name): DesiredVip => {
    const spec: VipSpec = VIPS[name];
    const change = changes.vips?.[name];
    const list = change !== undefined && change.backends !== undefined ? change.backends : spec.backends;
    return {
      name,
      keys: [{ address: spec.address, port: spec.port, protocol: spec.proto === 'tcp' ? 'TCP' : 'UDP' }],
      features: vipFeatures(spec),
      table: list === null ? null : cyclingTable(list, change?.size),
    };
  });
  const down = changes.down === undefined ? undefined : new Set(changes.down.map((i) => BACKENDS[i]!.address));
  return { vips, backends, ...(down === undefined ? {} : { down }) };
}

/**
 * `state` with alternates in one VIP's table: slot s's alternate is owner
 * position alternate(owner, s, owners) (NO_BACKEND_INDEX: none), owner being
 * the slot's own position in the table's owners. The default is the next
 * owner in the list (none with a single owner).
 */
export function withAlternates(
  state: DesiredDatapath,
  vip: VipName,
  alternate: (owner: number, slot: number, owners: number) => number = (owner, _slot, owners) => (owners > 1 ? (owner + 1) % owners : NO_BACKEND_INDEX),
): DesiredDatapath {
  return {
    ...state,
    vips: state.vips.map((v) => {
      if (v.name !== vip || v.table === null) return v;
      const t = v.table;
      const { slots } = t.content();
      return { ...v, table: tableOfSlots(t.size, t.owners, { slots, alternates: Uint32Array.from(slots, (owner, s) => alternate(owner, s, t.owners.length)) }) };
    }),
  };
}

/** Position in BACKENDS of a backend address. */
export function backendPosition(address: string): number {
  const i = BACKENDS.findIndex((b) => b.address === address);
  if (i < 0) throw new Error(`${address} is not a fixture backend`);
  return i;
}

export interface Selection {
  /** Position in BACKENDS of the backend that takes the flow; null: dropped. */
  readonly backend: number | null;
  /** The table slot the flow hashes to. */
  readonly slot: number;
  readonly hash: number;
  /** Which rule picked the backend; or the drop reason. */
  readonly path: 'primary' | 'alternate' | 'fallback' | 'DROP_NO_BACKEND' | 'DROP_BACKEND_DOWN' | 'DROP_BACKEND_UNRESOLVED';
}

/**
 * The backend the datapath must pick for a flow on a fixture VIP under
 * `state` (its tables with their alternates, its unresolved and down
 * backends), by the documented rule (docs/datapath.md, "Backend down"):
 * slot = hash % M; the slot's owner if usable and up; else its alternate if
 * usable and up; else the next XDPLB_FALLBACK_PROBES slots (wrapping at M),
 * each its owner then its alternate; else dropped with the reason of the
 * slot's own backend (down, else unresolved). The table path only: no flow
 * table.
 */
export function predictSelection(state: DesiredDatapath, vip: VipName, flow: FlowSpec, opts: { fragment?: boolean } = {}): Selection {
  const desired = state.vips.find((v) => v.name === vip);
  if (desired === undefined) throw new Error(`${vip} is not in the state`);
  const affinity: Affinity = opts.fragment === true ? 'sourceIp' : VIPS[vip].affinity;
  const hash = flowHash({ src: ipBytes(flow.src), dst: ipBytes(flow.dst), sport: flow.sport, dport: flow.dport, proto: flow.proto }, affinity);
  const wanted = desired.table;
  if (wanted === null) return { backend: null, slot: 0, hash, path: 'DROP_NO_BACKEND' };
  const t = { size: wanted.size, owners: wanted.owners, ...wanted.content() };
  const down = state.down ?? new Set<string>();
  const usable = (address: string): boolean => (state.backends.get(address)?.mac ?? null) !== null;
  const up = (owner: number | undefined): number | null => {
    if (owner === undefined || owner === NO_BACKEND_INDEX) return null;
    const address = t.owners[owner]!;
    return usable(address) && !down.has(address) ? backendPosition(address) : null;
  };
  const slot = hash % t.size;
  const own = up(t.slots[slot]);
  if (own !== null) return { backend: own, slot, hash, path: 'primary' };
  const alternate = up(t.alternates?.[slot]);
  if (alternate !== null) return { backend: alternate, slot, hash, path: 'alternate' };
  for (let i = 1; i <= FALLBACK_PROBES; i++) {
    const s = (slot + i) % t.size;
    const next = up(t.slots[s]) ?? up(t.alternates?.[s]);
    if (next !== null) return { backend: next, slot, hash, path: 'fallback' };
  }
  return { backend: null, slot, hash, path: down.has(t.owners[t.slots[slot]!]!) ? 'DROP_BACKEND_DOWN' : 'DROP_BACKEND_UNRESOLVED' };
}

/** Programs `state` (default: the fixture state) into the harness's maps through the agent's path. */
export function programFixture(h: LbHarness, state: DesiredDatapath = baseState()): Plan {
  return h.program(state, CONTROL);
}

/** The load balancer loaded and programmed with the fixture state: the set-up of the fixture, fuzz and decap tests. */
export function fixtureLb(): LbHarness {
  const h = new LbHarness();
  try {
    programFixture(h);
  } catch (e) {
    h.close();
    throw e;
  }
  return h;
}

export interface FlowSpec {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
}

/** The backend (position in BACKENDS) the datapath must pick for this flow on this VIP (table path), and the flow hash. */
export function predictBackend(vip: VipName, flow: FlowSpec, opts: { fragment?: boolean } = {}): { index: number; hash: number } {
  const spec = VIPS[vip];
  const affinity: Affinity = opts.fragment === true ? 'sourceIp' : spec.affinity;
  const hash = flowHash({ src: ipBytes(flow.src), dst: ipBytes(flow.dst), sport: flow.sport, dport: flow.dport, proto: flow.proto }, affinity);
  const list: readonly number[] = spec.backends ?? [];
  return { index: list[(hash % TABLE_SIZE) % list.length]!, hash };
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
