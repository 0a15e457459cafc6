// model.test.ts: model equivalence. For 100k random flows over IPv4 and IPv6
// VIPs (TCP and UDP, both affinities, IPIP and L2 DSR, weighted backends)
// programmed as the agent programs them (desiredState builds the Maglev
// tables of src/core/maglev.ts, planDatapath and MapWriter write them), the
// backend the XDP program picks equals the one the TypeScript model predicts
// from the wanted table (flowHash % M -> slot -> backend).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flowHash, tableIndex, type Affinity } from '../../src/core/flow-hash.js';
import type { DesiredVip } from '../../src/core/datapath-plan.js';
import { desiredState, type VipSpec } from '../../src/core/desired-state.js';
import { ipBytes, ipText } from '../../src/core/net.js';
import { ETH_P_IP, ETH_P_IPV6, ipv4, ipv6, PROTO_TCP, PROTO_UDP, tcp, udp, type Bytes } from '../../lab/packet.js';
import { LbHarness } from './lib/harness.js';
import { prng } from './lib/prng.js';
import { CONTROL, toLb } from './lib/fixture.js';

const FLOWS = 100_000;

interface ModelVip {
  address: string;
  port: number;
  mode: 'ipip' | 'l2dsr';
  v6: boolean;
  proto: number;
  affinity: Affinity;
  /** The table the agent wants for the VIP: owners by address, slot -> owner position. */
  table: NonNullable<DesiredVip['table']>;
  /** Its slots (owner positions). */
  slots: Uint32Array;
  template: Bytes;
}

describe('model equivalence: XDP backend choice = TypeScript prediction', () => {
  let h: LbHarness;
  const backends: { address: string; mac: string }[] = [];
  const vips: ModelVip[] = [];

  beforeAll(() => {
    h = new LbHarness();
    for (let i = 0; i < 12; i++) backends.push({ address: `10.2.0.${String(i + 1)}`, mac: `02:00:00:00:02:${(i + 1).toString(16).padStart(2, '0')}` });
    for (let i = 0; i < 12; i++) backends.push({ address: `2001:db8:2::${(i + 1).toString(16)}`, mac: `02:00:00:00:03:${(i + 1).toString(16).padStart(2, '0')}` });
    const specs: { address: string; port: number; proto: 'tcp' | 'udp'; mode: 'ipip' | 'l2dsr'; affinity: Affinity; size: number; members: number[] }[] = [
      { address: '10.110.0.1', port: 80, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', size: 65537, members: [0, 1, 2, 3, 4, 5, 6, 7] },
      { address: '10.110.0.2', port: 53, proto: 'udp', mode: 'ipip', affinity: 'sourceIp', size: 4093, members: [2, 3, 4, 5, 8, 9, 10] },
      { address: '10.110.0.3', port: 443, proto: 'tcp', mode: 'l2dsr', affinity: 'fiveTuple', size: 251, members: [0, 11] },
      { address: '2001:db8:110::1', port: 443, proto: 'tcp', mode: 'ipip', affinity: 'fiveTuple', size: 65537, members: [12, 13, 14, 15, 16, 17, 18, 19, 20] },
      { address: '2001:db8:110::2', port: 443, proto: 'udp', mode: 'l2dsr', affinity: 'sourceIp', size: 8191, members: [12, 20, 21, 22, 23] },
      { address: '2001:db8:110::3', port: 8080, proto: 'udp', mode: 'ipip', affinity: 'fiveTuple', size: 509, members: [5, 6, 7] },
    ];
    const vipSpecs: VipSpec[] = specs.map((s, n) => ({
      name: `model-${String(n)}`,
      address: s.address,
      ports: [{ port: s.port, protocol: s.proto === 'tcp' ? 'TCP' : 'UDP' }],
      mode: s.mode,
      affinity: s.affinity,
      flowTable: false,
      tableSize: s.size,
      backends: s.members.map((i) => ({ address: backends[i]!.address, weight: 1 + (i % 3) })),
    }));
    const macs = new Map(backends.map((b) => [b.address, b.mac]));
    const { desired } = desiredState(vipSpecs, {
      healthy: () => true,
      mac: (a) => {
        const mac = macs.get(a);
        return mac === undefined ? undefined : { ok: true, mac };
      },
      currentTable: () => undefined,
    });
    h.program(desired, CONTROL);
    specs.forEach((s, n) => {
      const v6 = s.address.includes(':');
      const proto = s.proto === 'tcp' ? PROTO_TCP : PROTO_UDP;
      const client = v6 ? '2001:db8:ff::1' : '192.0.2.1';
      const l4 = proto === PROTO_TCP ? tcp(client, s.address, { sport: 1, dport: s.port }) : udp(client, s.address, { sport: 1, dport: s.port });
      const l3 = v6 ? ipv6({ src: client, dst: s.address, proto }, l4) : ipv4({ src: client, dst: s.address, proto }, l4);
      const table = desired.vips[n]!.table;
      if (table === null) throw new Error(`${s.address}: the agent wants no table`);
      vips.push({ address: s.address, port: s.port, mode: s.mode, v6, proto, affinity: s.affinity, table, slots: table.content().slots, template: toLb(v6 ? ETH_P_IPV6 : ETH_P_IP, l3) });
    });
  });
  afterAll(() => h.close());

  it(`${String(FLOWS)} random flows reach the predicted backend`, () => {
    const next = prng(0x5eed1234);
    const macIndex = new Map(backends.map((b, i) => [b.mac, i]));
    const addrIndex = new Map(backends.map((b, i) => [b.address, i]));
    let mismatches = 0;
    const examples: string[] = [];
    const started = performance.now();
    for (let n = 0; n < FLOWS; n++) {
      const m = vips[next() % vips.length]!;
      const frame = Uint8Array.from(m.template);
      const l3 = 14;
      const src = new Uint8Array(m.v6 ? 16 : 4);
      for (let i = 0; i < src.length; i += 4) new DataView(src.buffer).setUint32(i, next());
      const sport = next() & 0xffff;
      frame.set(src, l3 + (m.v6 ? 8 : 12));
      const l4 = l3 + (m.v6 ? 40 : 20);
      frame[l4] = sport >> 8;
      frame[l4 + 1] = sport & 0xff;

      const hash = flowHash({ src, dst: ipBytes(m.address), sport, dport: m.port, proto: m.proto }, m.affinity);
      const expected = addrIndex.get(m.table.owners[m.slots[tableIndex(hash, m.table.size)]!]!)!;

      const r = h.runFast(frame);
      let got = -1;
      if (r.verdict === 'TX') {
        if (m.mode === 'l2dsr') {
          got = macIndex.get(Array.from(r.out.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':')) ?? -1;
        } else {
          const outerV6 = r.out.readUInt16BE(12) === ETH_P_IPV6;
          const dst = outerV6 ? r.out.subarray(38, 54) : r.out.subarray(30, 34);
          got = addrIndex.get(ipText(Uint8Array.from(dst))) ?? -1;
        }
      }
      if (got !== expected) {
        mismatches++;
        if (examples.length < 5) examples.push(`${m.address}:${String(m.port)} from ${ipText(src)}:${String(sport)}: got ${String(got)}, expected ${String(expected)}`);
      }
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(`model equivalence: ${String(FLOWS)} flows in ${seconds.toFixed(1)} s (${((seconds * 1e6) / FLOWS).toFixed(1)} us/flow)`);
    expect(examples).toEqual([]);
    expect(mismatches).toBe(0);
  });
});
