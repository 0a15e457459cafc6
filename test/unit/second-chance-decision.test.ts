// second-chance-decision.test.ts: what the operator publishes for a VIP in
// GUE mode (issue 17, core/vip-decision.ts): a scale-out's table gives each
// moved slot its previous owner as second hop; a later change within the
// drain keeps them; once the drain is over the VIP gets a new generation
// without them; a drained backend (weight 0) is the second hop of its slots
// while one taken out for its health never is; other modes carry none.
import { describe, expect, it } from 'vitest';
import { NO_HOP } from '../../src/core/second-hops.js';
import { decideVip, secondHopsEnd, type BackendObject, type NodeView, type PublishedTable, type VipObject, type VipWorld } from '../../src/core/vip-decision.js';
import { TableMemo } from '../../src/core/table-memo.js';

const vip = (mode: 'ipip' | 'gue', drainSeconds = 300): VipObject => ({
  namespace: 'shop',
  name: 'web',
  generation: 1,
  creationTimestamp: '2026-11-28T00:00:00Z',
  spec: {
    address: '192.0.2.10',
    ports: [{ protocol: 'TCP', port: 80 }],
    mode,
    ...(mode === 'gue' ? { secondChance: { drainSeconds } } : {}),
    hashing: { tableSize: 1021, affinity: 'FiveTuple' },
    backends: { selector: { matchLabels: { app: 'web' } } },
  },
  conditions: [],
});

const backend = (n: number, weight = 100): BackendObject => ({ namespace: 'shop', name: `be${n}`, labels: { app: 'web' }, address: `10.0.0.${n}`, weight, deleting: false });
const tables = new TableMemo();

function decide(v: VipObject, backends: BackendObject[], published: PublishedTable | null, nowMs: number, nodes: NodeView[] = []) {
  const w: VipWorld = { vip: v, allVips: [v], backends, endpointSlices: [], nodes, published, now: new Date(nowMs), tables };
  const d = decideVip(w);
  return { ...d, published: { generation: d.generation, table: d.table!, since: new Date(nowMs) } as PublishedTable };
}

const hopsOf = (p: PublishedTable): Map<string, number> => {
  const out = new Map<string, number>();
  for (const h of p.table.secondHops ?? []) if (h !== NO_HOP) out.set(p.table.backends[h]!.key, (out.get(p.table.backends[h]!.key) ?? 0) + 1);
  return out;
};

describe('second chance in the operator\'s decision', () => {
  const three = [backend(1), backend(2), backend(3)];
  const four = [...three, backend(4)];

  it('a scale-out gives the moved slots their previous owners; a change within the drain keeps them; after it, a generation without', () => {
    const v = vip('gue', 300);
    const first = decide(v, three, null, 0);
    expect(first.table!.secondHops).toBeUndefined();
    const out = decide(v, four, first.published, 1000);
    expect(out.generation).toBe(first.generation + 1);
    const moved = [...first.table!.slots.keys()].filter((s) => first.table!.backends[first.table!.slots[s]!]!.key !== out.table!.backends[out.table!.slots[s]!]!.key);
    expect([...hopsOf(out.published).values()].reduce((a, b) => a + b, 0)).toBe(moved.length);
    expect(hopsOf(out.published).has('10.0.0.4')).toBe(false);
    // Nothing changes within the drain: the same table and generation.
    expect(decide(v, four, out.published, 200_000).generation).toBe(out.generation);
    expect(secondHopsEnd(v, out.published)).toBe(1000 + 300_000);
    // The drain is over: the same slots, no second hops, a new generation.
    const after = decide(v, four, out.published, 302_000);
    expect(after.generation).toBe(out.generation + 1);
    expect(after.table!.secondHops).toBeUndefined();
    expect([...after.table!.slots]).toEqual([...out.table!.slots]);
  });

  it('a drained backend (weight 0) is the second hop of its slots; one unhealthy on the nodes never is', () => {
    const v = vip('gue');
    const first = decide(v, three, null, 0);
    const drained = decide(v, [backend(1, 0), backend(2), backend(3)], first.published, 1000);
    expect([...hopsOf(drained.published)]).toEqual([['10.0.0.1', first.table!.slots.filter((o) => first.table!.backends[o]!.key === '10.0.0.1').length]]);
    // 10.0.0.2 fails on both nodes: its slots move, and it is no one's second hop.
    const nodes: NodeView[] = ['lb1', 'lb2'].map((node) => ({ node, programmed: null, unhealthy: ['10.0.0.2'] }));
    const sick = decide(v, three, first.published, 1000, nodes);
    expect(hopsOf(sick.published).has('10.0.0.2')).toBe(false);
  });

  it('ipip carries no second hops, and a VIP moved from gue to ipip drops them', () => {
    const first = decide(vip('ipip'), three, null, 0);
    expect(decide(vip('ipip'), four, first.published, 1000).table!.secondHops).toBeUndefined();
    const gue = decide(vip('gue'), four, decide(vip('gue'), three, null, 0).published, 1000);
    expect(gue.table!.secondHops).toBeDefined();
    const back = decide(vip('ipip'), four, gue.published, 2000);
    expect(back.table!.secondHops).toBeUndefined();
    expect(back.generation).toBe(gue.generation + 1);
  });
});
