// alternates.test.ts: the alternate of every slot (issue 13), on random
// backend sets and histories (fast-check): each slot of a table with two or
// more serving backends has an alternate other than its owner, serving; for
// every single backend X, the successor the operator publishes once X is out
// sends every slot of X to exactly its alternate and changes no other slot
// (0 flows move twice), and leaves every backend within one slot of its exact
// share; X's slots split over the others by weight within two slots of an
// exact split. The node's own down marks fail open per VIP.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeAlternates, NO_ALTERNATE, withAlternates } from '../../src/core/alternates.js';
import { tableDigest } from '../../src/core/digest.js';
import { routeAround } from '../../src/core/down.js';
import { buildTable, successorTable, type Table } from '../../src/core/maglev.js';
import { assembleShards, encodeTable } from '../../src/core/table-shards.js';

const backendSet = fc
  .uniqueArray(fc.integer({ min: 1, max: 250 }), { minLength: 2, maxLength: 12 })
  .chain((ids) => fc.tuple(...ids.map((id) => fc.record({ key: fc.constant(`10.0.0.${id}`), weight: fc.integer({ min: 1, max: 6 }) }))));
const size = fc.constantFrom(251, 509, 1021);

/** A table reached by a few random changes (adds, removes, weight changes) from a fresh one. */
const history = fc
  .tuple(size, backendSet, fc.array(backendSet, { maxLength: 3 }))
  .map(([m, first, later]) => later.reduce<Table>((t, set) => successorTable(t, { size: m, backends: set }), buildTable({ size: m, backends: first })));

describe('alternates', () => {
  it('every slot has a serving alternate other than its owner', () => {
    fc.assert(
      fc.property(history, (table) => {
        const alt = computeAlternates(table);
        for (let s = 0; s < table.size; s++) {
          expect(alt[s]).not.toBe(NO_ALTERNATE);
          expect(alt[s]).not.toBe(table.slots[s]);
          expect(table.backends[alt[s]!]!.weight).toBeGreaterThan(0);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('the successor without X moves exactly X\'s slots, each to its alternate: 0 flows move twice; balance stays within one slot', () => {
    fc.assert(
      fc.property(history, fc.nat(), (table, pick) => {
        const alt = computeAlternates(table);
        const x = pick % table.backends.length;
        const without = table.backends.map((b, i) => (i === x ? { key: b.key, weight: 0 } : b));
        const next = successorTable(table, { size: table.size, backends: without });
        let moved = 0;
        for (let s = 0; s < table.size; s++) {
          if (table.slots[s] === x) {
            expect(next.slots[s]).toBe(alt[s]);
            moved++;
          } else {
            expect(next.slots[s]).toBe(table.slots[s]);
          }
        }
        // Balance of the table without X: every backend within one slot of its exact share.
        const total = without.reduce((a, b) => a + b.weight, 0);
        const counts = new Int32Array(next.backends.length);
        for (let s = 0; s < next.size; s++) counts[next.slots[s]!]!++;
        next.backends.forEach((b, i) => expect(Math.abs(counts[i]! - (next.size * b.weight) / total)).toBeLessThan(1));
        // X's slots split by weight: within two slots of an exact split of X's slots alone.
        const got = new Int32Array(table.backends.length);
        for (let s = 0; s < table.size; s++) if (table.slots[s] === x) got[alt[s]!]!++;
        table.backends.forEach((b, i) => {
          if (i !== x) expect(Math.abs(got[i]! - (moved * b.weight) / total)).toBeLessThan(2);
        });
      }),
      { numRuns: 80 },
    );
  });

  it('travels with the table: shards carry it, the digest covers it', () => {
    const table = withAlternates(buildTable({ size: 1021, backends: [{ key: 'a', weight: 1 }, { key: 'b', weight: 2 }, { key: 'c', weight: 3 }] }));
    const back = assembleShards(JSON.parse(JSON.stringify(encodeTable(table).map((s) => ({ ...s, vip: 'web', generation: 1 })))))!;
    expect(Array.from(back.table.alternates!)).toEqual(Array.from(table.alternates!));
    expect(back.digest).toBe(tableDigest(table));
    const changed = { ...table, alternates: table.alternates!.slice() };
    changed.alternates[0] = changed.alternates[0] === 0 ? 1 : 0;
    expect(tableDigest(changed)).not.toBe(tableDigest(table));
  });

  it('one serving backend has no alternate', () => {
    const alt = computeAlternates(buildTable({ size: 251, backends: [{ key: 'a', weight: 1 }, { key: 'b', weight: 0 }] }));
    expect(alt.every((a) => a === NO_ALTERNATE)).toBe(true);
  });
});

describe('routing around on a node', () => {
  it('marks down what its probes find failing, but never every serving backend of a VIP (fail open)', () => {
    const vips = [
      { name: 'web', serving: ['a', 'b', 'c'] },
      { name: 'api', serving: ['c', 'd'] },
    ];
    expect([...routeAround(vips, (_v, a) => a === 'a')]).toEqual(['a']);
    // api would be left with nothing up: c and d stay up; web's a stays down.
    expect([...routeAround(vips, (_v, a) => a === 'a' || a === 'c' || a === 'd')].sort()).toEqual(['a']);
    expect([...routeAround(vips, () => false)]).toEqual([]);
  });
});
