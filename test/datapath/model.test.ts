// model.test.ts: model equivalence. For 100k random flows over IPv4 and IPv6
// VIPs (TCP and UDP, both affinities, IPIP and L2 DSR) whose tables come from
// src/core/maglev.ts, the backend the XDP program picks equals the one the
// TypeScript model predicts (flowHash % M -> Maglev slot -> backend).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flowHash, tableIndex, type Affinity } from '../../src/core/flow-hash.js';
import { buildTable } from '../../src/core/maglev.js';
import { ipBytes, ipText } from '../../src/core/net.js';
import type { DatapathBackend, DatapathVip } from '../../src/bpf/programmer.js';
import { ETH_P_IP, ETH_P_IPV6, ethernet, ipv4, ipv6, PROTO_TCP, PROTO_UDP, tcp, udp, type Bytes } from '../../lab/packet.js';
import { LbHarness } from './lib/harness.js';
import { prng } from './lib/prng.js';
import { CONTROL, MAC_LB, MAC_ROUTER } from './lib/fixture.js';

const FLOWS = 100_000;


interface ModelVip {
  vip: DatapathVip;
  v6: boolean;
  proto: number;
  affinity: Affinity;
  table: ReturnType<typeof buildTable>;
  /** Maglev backend position -> global backend index. */
  globalIndex: number[];
  template: Bytes;
}

describe('model equivalence: XDP backend choice = TypeScript prediction', () => {
  let h: LbHarness;
  const backends: DatapathBackend[] = [];
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
    for (const s of specs) {
      const table = buildTable({ size: s.size, backends: s.members.map((i) => ({ key: backends[i]!.address as string, weight: 1 + (i % 3) })) });
      const globalIndex = table.backends.map((b) => backends.findIndex((x) => x.address === b.key));
      const slots = Uint32Array.from(table.slots, (pos) => globalIndex[pos]!);
      const v6 = s.address.includes(':');
      const proto = s.proto === 'tcp' ? PROTO_TCP : PROTO_UDP;
      const client = v6 ? '2001:db8:ff::1' : '192.0.2.1';
      const l4 = proto === PROTO_TCP ? tcp(client, s.address, { sport: 1, dport: s.port }) : udp(client, s.address, { sport: 1, dport: s.port });
      const l3 = v6 ? ipv6({ src: client, dst: s.address, proto }, l4) : ipv4({ src: client, dst: s.address, proto }, l4);
      vips.push({
        vip: { address: s.address, port: s.port, proto: s.proto, mode: s.mode, affinity: s.affinity, table: { size: s.size, slots } },
        v6,
        proto,
        affinity: s.affinity,
        table,
        globalIndex,
        template: ethernet({ dst: MAC_LB, src: MAC_ROUTER, type: v6 ? ETH_P_IPV6 : ETH_P_IP }, l3),
      });
    }
    h.programmer.apply({ control: CONTROL, backends, vips: vips.map((v) => v.vip) });
  });
  afterAll(() => h.close());

  it(`${String(FLOWS)} random flows reach the predicted backend`, () => {
    const next = prng(0x5eed1234);
    const macIndex = new Map(backends.map((b, i) => [b.mac as string, i]));
    const addrIndex = new Map(backends.map((b, i) => [b.address as string, i]));
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

      const hash = flowHash({ src, dst: ipBytes(m.vip.address), sport, dport: m.vip.port, proto: m.proto }, m.affinity);
      const expected = m.globalIndex[m.table.slots[tableIndex(hash, m.table.size)]!]!;

      const r = h.runFast(frame);
      let got = -1;
      if (r.verdict === 'TX') {
        if (m.vip.mode === 'l2dsr') {
          got = macIndex.get(Array.from(r.out.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':')) ?? -1;
        } else {
          const outerV6 = r.out.readUInt16BE(12) === ETH_P_IPV6;
          const dst = outerV6 ? r.out.subarray(38, 54) : r.out.subarray(30, 34);
          got = addrIndex.get(ipText(Uint8Array.from(dst))) ?? -1;
        }
      }
      if (got !== expected) {
        mismatches++;
        if (examples.length < 5) examples.push(`${m.vip.address}:${String(m.vip.port)} from ${ipText(src)}:${String(sport)}: got ${String(got)}, expected ${String(expected)}`);
      }
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(`model equivalence: ${String(FLOWS)} flows in ${seconds.toFixed(1)} s (${((seconds * 1e6) / FLOWS).toFixed(1)} us/flow)`);
    expect(examples).toEqual([]);
    expect(mismatches).toBe(0);
  });
});
