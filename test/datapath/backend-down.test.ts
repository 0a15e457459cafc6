// backend-down.test.ts: alternates and the down state as fixture rows. Each
// row: a state (fixture tables with alternates, backends marked down or
// unresolved) programmed through the agent's path (planDatapath, MapWriter),
// an input frame, and the verdict, output bytes and reason counters that must
// follow from the documented selection rule (slot owner, its alternate, the
// bounded fallback over the next slots, else DROP_BACKEND_DOWN), predicted in
// TypeScript from the tables by predictSelection. Then a flow-table flow to a
// backend that goes down moves to the slot's alternate.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReasonName } from '../../src/bpf/abi.js';
import { planDatapath, type DesiredDatapath } from '../../src/core/datapath-plan.js';
import { be16, concat, ETH_P_IP, ETH_P_IPV6, icmp4, ipv4, ipv6, PROTO_ICMP, PROTO_TCP, PROTO_UDP, tcp, udp, type Bytes } from '../../lab/packet.js';
import type { LbHarness, Verdict } from './lib/harness.js';
import {
  backendPosition,
  baseState,
  BACKENDS,
  CONTROL,
  entropyOf,
  expectIpip,
  expectL2dsr,
  fixtureLb,
  predictSelection,
  programFixture,
  TABLE_SIZE,
  toLb,
  VIPS,
  withAlternates,
  type FlowSpec,
  type Selection,
  type StateChanges,
  type VipName,
} from './lib/fixture.js';

const CLIENT4 = '192.0.2.20';
const CLIENT6 = '2001:db8:ff::20';

/** The fixture state with `changes`, and alternates (the next owner) in these VIPs' tables. */
function altState(changes: StateChanges = {}, vips: readonly VipName[] = ['v4TcpIpip', 'v6TcpDsr', 'v6TcpIpip']): DesiredDatapath {
  return vips.reduce((s, v) => withAlternates(s, v), baseState(changes));
}

function flowOf(vip: VipName, sport: number): FlowSpec {
  const v = VIPS[vip];
  return { src: v.address.includes(':') ? CLIENT6 : CLIENT4, dst: v.address, sport, dport: v.port, proto: v.proto === 'tcp' ? PROTO_TCP : PROTO_UDP };
}

/** The first flow (by source port, from 40000 round to 39999) of a VIP whose selection under `state` satisfies `want`. */
function findFlow(state: DesiredDatapath, vip: VipName, want: (s: Selection) => boolean): { flow: FlowSpec; sel: Selection } {
  for (let n = 0; n < 0xffff; n++) {
    const flow = flowOf(vip, ((40000 - 1 + n) % 0xffff) + 1);
    const sel = predictSelection(state, vip, flow);
    if (want(sel)) return { flow, sel };
  }
  throw new Error(`no flow of ${vip} with the wanted selection`);
}

function frameOf(f: FlowSpec): Bytes {
  const v6 = f.dst.includes(':');
  const l4 = f.proto === PROTO_TCP ? tcp(f.src, f.dst, { sport: f.sport, dport: f.dport }) : udp(f.src, f.dst, { sport: f.sport, dport: f.dport });
  return v6 ? toLb(ETH_P_IPV6, ipv6({ src: f.src, dst: f.dst, proto: f.proto }, l4)) : toLb(ETH_P_IP, ipv4({ src: f.src, dst: f.dst, proto: f.proto, df: true }, l4));
}

/** The frame the datapath must send for this flow of this VIP to backend `backend` (position in BACKENDS). */
function expected(vip: VipName, input: Bytes, f: FlowSpec, sel: Selection, backend: number): Bytes {
  return VIPS[vip].mode === 'l2dsr' ? expectL2dsr(input, backend) : expectIpip(input, backend, entropyOf(sel.hash, f.sport, f.dport));
}

interface Row {
  description: string;
  state: DesiredDatapath;
  input: Bytes;
  verdict: Verdict;
  output: 'unchanged' | Bytes | null;
  reasons: Partial<Record<ReasonName, number>>;
}

function rows(): Row[] {
  const out: Row[] = [];
  /** A row for a flow of `vip` chosen by `want` under `state`; checks that the selection took `path`. */
  const flowRow = (description: string, state: DesiredDatapath, vip: VipName, path: Selection['path'], extra: (s: Selection) => boolean = () => true): void => {
    const { flow, sel } = findFlow(state, vip, (s) => s.path === path && extra(s));
    const input = frameOf(flow);
    const fwd = VIPS[vip].mode === 'l2dsr' ? 'FWD_L2DSR' : 'FWD_IPIP';
    if (sel.backend === null) {
      out.push({ description, state, input, verdict: 'DROP', output: null, reasons: { [path]: 1 } });
      return;
    }
    const event: Partial<Record<ReasonName, number>> = path === 'alternate' ? { EV_ALTERNATE: 1 } : path === 'fallback' ? { EV_FALLBACK: 1 } : {};
    out.push({ description, state, input, verdict: 'TX', output: expected(vip, input, flow, sel, sel.backend), reasons: { [fwd]: 1, ...event } });
  };
  const ownerIs = (state: DesiredDatapath, vip: VipName, backend: number) => (s: Selection) => ownerOf(state, vip, s.slot) === backend;

  // (a) a down backend's slots go to their alternates
  let st = altState({ down: [0] });
  flowRow('backend down: its slot goes to the alternate (IPv4, IPIP)', st, 'v4TcpIpip', 'alternate', ownerIs(st, 'v4TcpIpip', 0));
  flowRow('backend down: a flow whose own backend is up stays on it', st, 'v4TcpIpip', 'primary');
  st = altState({ down: [3] });
  flowRow('backend down: its slot goes to the alternate (IPv6, L2 DSR)', st, 'v6TcpDsr', 'alternate', ownerIs(st, 'v6TcpDsr', 3));
  flowRow('backend down: its slot goes to the alternate (IPv6, IPIP)', st, 'v6TcpIpip', 'alternate', ownerIs(st, 'v6TcpIpip', 3));
  st = altState({ unresolved: [0] });
  flowRow('backend unresolved (not down): its slot goes to the alternate as well', st, 'v4TcpIpip', 'alternate', ownerIs(st, 'v4TcpIpip', 0));

  // (b) backend and alternate down: the bounded fallback over the next slots
  st = altState({ down: [0, 1] });
  flowRow('backend and alternate down: a following slot (fallback)', st, 'v4TcpIpip', 'fallback');
  st = altState({ down: [1, 2] });
  flowRow('fallback from the last slot wraps to slot 0', st, 'v4TcpIpip', 'fallback', (s) => s.slot === TABLE_SIZE - 1);
  st = altState({ down: [0] });
  flowRow('a VIP without alternates: a down backend\'s slot falls back to the next slot', st, 'v4UdpIpip', 'fallback');

  // (c) every candidate down
  st = altState({ down: [0, 1, 2] });
  flowRow('every candidate down (IPv4): DROP_BACKEND_DOWN', st, 'v4TcpIpip', 'DROP_BACKEND_DOWN');
  st = altState({ down: [3, 4] });
  flowRow('every candidate down (IPv6, L2 DSR): DROP_BACKEND_DOWN', st, 'v6TcpDsr', 'DROP_BACKEND_DOWN');

  // (d) what has no backend to route around is as before
  st = altState({ down: [0, 1, 2, 3, 4] });
  {
    const input = toLb(ETH_P_IP, ipv4({ src: CLIENT4, dst: '10.200.0.1', proto: PROTO_TCP }, tcp(CLIENT4, '10.200.0.1', { sport: 1, dport: 80 })));
    out.push({ description: 'backends down: a non-VIP packet is passed untouched', state: st, input, verdict: 'PASS', output: 'unchanged', reasons: { PASS_NOT_VIP: 1 } });
    const noTable = frameOf(flowOf('noTable', 40000));
    out.push({ description: 'backends down: a VIP without a table still drops as DROP_NO_BACKEND', state: st, input: noTable, verdict: 'DROP', output: null, reasons: { DROP_NO_BACKEND: 1 } });
    const unresolved = frameOf(flowOf('unresolved', 40000));
    out.push({ description: 'backends down: a VIP whose own backend is unresolved still drops as DROP_BACKEND_UNRESOLVED', state: st, input: unresolved, verdict: 'DROP', output: null, reasons: { DROP_BACKEND_UNRESOLVED: 1 } });
  }

  // ICMP errors about a flow follow the flow's backend choice
  st = altState({ down: [0] });
  {
    const { flow, sel } = findFlow(st, 'v4TcpIpip', (s) => s.path === 'alternate');
    const quoted = ipv4({ src: flow.dst, dst: flow.src, proto: PROTO_TCP, df: true }, tcp(flow.dst, flow.src, { sport: flow.dport, dport: flow.sport }));
    const input = toLb(ETH_P_IP, ipv4({ src: '198.51.100.1', dst: flow.dst, proto: PROTO_ICMP }, icmp4(3, 4, concat(be16(0), be16(1400)), quoted.subarray(0, 28))));
    out.push({ description: 'ICMP frag-needed about a flow whose backend is down: to the alternate', state: st, input, verdict: 'TX', output: expectIpip(input, sel.backend!, entropyOf(sel.hash, flow.sport, flow.dport)), reasons: { FWD_ICMP_ERROR: 1, EV_ALTERNATE: 1 } });
  }
  return out;
}

/** Position in BACKENDS of the owner of a slot of a VIP's table in `state`. */
function ownerOf(state: DesiredDatapath, vip: VipName, slot: number): number {
  const t = state.vips.find((v) => v.name === vip)!.table!;
  return backendPosition(t.owners[t.content().slots[slot]!]!);
}

describe('xdp_lb with backends down', () => {
  let h: LbHarness;
  beforeAll(() => {
    h = fixtureLb();
  });
  afterAll(() => h.close());

  for (const row of rows()) {
    it(row.description, () => {
      h.program(row.state, CONTROL);
      const r = h.run(row.input);
      expect(r.verdict).toBe(row.verdict);
      expect(r.reasons).toEqual(row.reasons);
      if (row.output === 'unchanged') expect(Buffer.from(r.out).equals(Buffer.from(row.input))).toBe(true);
      else if (row.output !== null) expect(r.out.toString('hex')).toBe(Buffer.from(row.output).toString('hex'));
    });
  }

  it('marking a backend down is one map write, and the maps read back as planned', () => {
    const state = altState();
    h.program(state, CONTROL);
    const down = altState({ down: [1] });
    const plan = planDatapath(h.writer.readImage(), down, h.writer.capacities());
    expect(plan.ops).toEqual([{ op: 'setBackendDown', index: plan.backendIndex.get(BACKENDS[1].address), down: true }]);
    h.program(down, CONTROL);
    const image = h.writer.readImage();
    expect([...image.down]).toEqual([plan.backendIndex.get(BACKENDS[1].address)]);
    expect(planDatapath(image, down, h.writer.capacities()).ops).toEqual([]);
    h.program(state, CONTROL);
    expect(h.writer.readImage().down.size).toBe(0);
  });

  it('a flow-table flow to a backend that goes down moves to the alternate, and stays there', () => {
    const state = withAlternates(baseState({ vips: { flowTable: { backends: [0, 1] } } }), 'flowTable');
    h.program(state, CONTROL);
    const { flow, sel } = findFlow(state, 'flowTable', (s) => s.path === 'primary' && s.backend === 0);
    const input = frameOf(flow);
    const to = (backend: number) => Buffer.from(expectIpip(input, backend, entropyOf(sel.hash, flow.sport, flow.dport))).toString('hex');

    let r = h.run(input);
    expect(r.reasons).toEqual({ FWD_IPIP: 1, EV_FLOW_TABLE_MISS: 1 });
    expect(r.out.toString('hex')).toBe(to(0));

    // backend 0 down: the remembered flow is stale, the table gives the slot's alternate
    const down = withAlternates(baseState({ vips: { flowTable: { backends: [0, 1] } }, down: [0] }), 'flowTable');
    const moved = predictSelection(down, 'flowTable', flow);
    expect(moved).toMatchObject({ path: 'alternate', backend: 1 });
    h.program(down, CONTROL);
    r = h.run(input);
    expect(r.reasons).toEqual({ FWD_IPIP: 1, EV_FLOW_TABLE_STALE: 1, EV_ALTERNATE: 1 });
    expect(r.out.toString('hex')).toBe(to(1));
    // the flow table now remembers the alternate
    r = h.run(input);
    expect(r.reasons).toEqual({ FWD_IPIP: 1, EV_FLOW_TABLE_HIT: 1 });
    expect(r.out.toString('hex')).toBe(to(1));

    // backend 0 back up: the established flow stays where it is
    h.program(state, CONTROL);
    r = h.run(input);
    expect(r.reasons).toEqual({ FWD_IPIP: 1, EV_FLOW_TABLE_HIT: 1 });
    expect(r.out.toString('hex')).toBe(to(1));
    h.maps.flows.keys().forEach((k) => h.maps.flows.delete(k));
    programFixture(h);
  });
});
