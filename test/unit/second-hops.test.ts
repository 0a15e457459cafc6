// second-hops.test.ts: each slot's second hop (issue 17), on random backend
// sets and changes (fast-check): a slot whose owner changed gets exactly its
// previous owner, an unchanged one gets none, or keeps its hop while the
// drain runs (carry); a hop is never the slot's owner, never a backend the
// table no longer lists or the caller refuses; a resize keeps none. The
// digest covers the hops (and a table without any keeps its old digest),
// and the published shards carry them back exactly.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withAlternates } from '../../src/core/alternates.js';
import { tableDigest } from '../../src/core/digest.js';
import { buildTable, successorTable, type Table } from '../../src/core/maglev.js';
import { NO_HOP, secondHopCounts, withoutSecondHops, withSecondHops } from '../../src/core/second-hops.js';
import { assembleShards, encodeTable } from '../../src/core/table-shards.js';

const backendSet = fc
  .uniqueArray(fc.integer({ min: 1, max: 250 }), { minLength: 1, maxLength: 10 })
  .chain((ids) => fc.tuple(...ids.map((id) => fc.record({ key: fc.constant(`10.0.0.${id}`), weight: fc.integer({ min: 1, max: 6 }) }))));
const size = fc.constantFrom(251, 509, 1021);
const all = (): boolean => true;
const ownerKey = (t: Table, s: number): string => t.backends[t.slots[s]!]!.key;
const hopKey = (t: Table, s: number): string | null => (t.secondHops === undefined || t.secondHops[s] === NO_HOP ? null : t.backends[t.secondHops[s]!]!.key);

describe('second hops', () => {
  it('a slot whose owner changed gets its previous owner as second hop; an unchanged slot none (no carry)', () => {
    fc.assert(
      fc.property(size, backendSet, backendSet, (m, a, b) => {
        const before = buildTable({ size: m, backends: a });
        const next = withSecondHops(before, successorTable(before, { size: m, backends: b }), false, all);
        const listed = new Set(next.backends.map((x) => x.key));
        for (let s = 0; s < m; s++) {
          const was = ownerKey(before, s);
          const expected = was !== ownerKey(next, s) && listed.has(was) ? was : null;
          expect(hopKey(next, s)).toBe(expected);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('a scale-out gives every moved slot its previous owner, and the hops stay over a later change while the drain runs', () => {
    const a = [{ key: '10.0.0.1', weight: 1 }, { key: '10.0.0.2', weight: 1 }, { key: '10.0.0.3', weight: 1 }];
    const t0 = buildTable({ size: 1021, backends: a });
    const out = [...a, { key: '10.0.0.4', weight: 1 }];
    const t1 = withSecondHops(t0, successorTable(t0, { size: 1021, backends: out }), false, all);
    const moved = [...t0.slots.keys()].filter((s) => ownerKey(t0, s) !== ownerKey(t1, s));
    expect(moved.length).toBeGreaterThan(200);
    expect(moved.every((s) => hopKey(t1, s) === ownerKey(t0, s))).toBe(true);
    expect(secondHopCounts(t1).reduce((x, y) => x + y, 0)).toBe(moved.length);
    // A weight change on 10.0.0.1 moves a few more slots; the scale-out's hops stay (carry) or go (drained).
    const w = out.map((x) => (x.key === '10.0.0.1' ? { ...x, weight: 2 } : x));
    const carried = withSecondHops(t1, successorTable(t1, { size: 1021, backends: w }), true, all);
    const dropped = withSecondHops(t1, successorTable(t1, { size: 1021, backends: w }), false, all);
    for (const s of moved) {
      if (ownerKey(carried, s) !== ownerKey(t1, s)) continue; // moved again: its hop is the newer previous owner
      expect(hopKey(carried, s)).toBe(ownerKey(t0, s));
      expect(hopKey(dropped, s)).toBeNull();
    }
  });

  it('a hop is never the owner, a backend no longer listed, or one the caller refuses', () => {
    fc.assert(
      fc.property(size, backendSet, backendSet, backendSet, fc.boolean(), (m, a, b, c, carry) => {
        const t0 = buildTable({ size: m, backends: a });
        const t1 = withSecondHops(t0, successorTable(t0, { size: m, backends: b }), false, all);
        const refused = new Set<string>(c.map((x) => x.key).slice(0, 1));
        const t2 = withSecondHops(t1, successorTable(t1, { size: m, backends: c }), carry, (k) => !refused.has(k));
        const listed = new Set(t2.backends.map((x) => x.key));
        for (let s = 0; s < m; s++) {
          const h = hopKey(t2, s);
          if (h === null) continue;
          expect(h).not.toBe(ownerKey(t2, s));
          expect(listed.has(h)).toBe(true);
          expect(refused.has(h)).toBe(false);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('a resize, a first table or nothing moved: no second hops at all', () => {
    const a = [{ key: '10.0.0.1', weight: 1 }, { key: '10.0.0.2', weight: 1 }];
    const small = buildTable({ size: 251, backends: a });
    const big = buildTable({ size: 509, backends: [...a, { key: '10.0.0.3', weight: 1 }] });
    expect(withSecondHops(small, big, true, all).secondHops).toBeUndefined();
    expect(withSecondHops(null, small, true, all).secondHops).toBeUndefined();
    expect(withSecondHops(small, small, true, all).secondHops).toBeUndefined();
  });

  it('the digest covers the hops, a table without any keeps its digest, and published shards carry them back', () => {
    const a = [{ key: '10.0.0.1', weight: 1 }, { key: '10.0.0.2', weight: 1 }];
    const t0 = buildTable({ size: 509, backends: a });
    const bare = withAlternates(successorTable(t0, { size: 509, backends: [...a, { key: '10.0.0.3', weight: 1 }] }));
    const hopped = withSecondHops(t0, bare, false, all);
    expect(hopped.secondHops).toBeDefined();
    expect(tableDigest(withoutSecondHops(hopped))).toBe(tableDigest(bare));
    expect(tableDigest(hopped)).not.toBe(tableDigest(bare));
    const back = assembleShards(encodeTable(hopped).map((spec) => ({ ...spec, vip: 'shop/web', generation: 2 })))!;
    expect(back.digest).toBe(tableDigest(hopped));
    expect([...back.table.secondHops!]).toEqual([...hopped.secondHops!]);
    expect([...back.table.alternates!]).toEqual([...hopped.alternates!]);
  });
});
