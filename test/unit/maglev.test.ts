// maglev.test.ts: properties of the lookup table and its minimal-disruption
// successor, checked with fast-check over random backend sets and histories.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BackendWeight } from '../../src/core/backends.js';
import { tableDigest } from '../../src/core/digest.js';
import { ErrorCodes } from '../../src/core/errors.js';
import {
  buildTable,
  imbalance,
  minimumMoves,
  quotas,
  slotCounts,
  successorTable,
  tableChange,
  type Table,
} from '../../src/core/maglev.js';
import { TABLE_SIZES } from '../../src/core/table-sizes.js';

const SMALL_SIZES = [251, 509, 1021, 2039, 4093] as const;

const keyArb = fc.stringMatching(/^[a-z0-9.:-]{1,24}$/);
const backendsArb = (opts: { min: number; max: number; maxWeight: number }) =>
  fc
    .uniqueArray(fc.record({ key: keyArb, weight: fc.integer({ min: 0, max: opts.maxWeight }) }), {
      minLength: opts.min,
      maxLength: opts.max,
      selector: (b) => b.key,
    })
    .filter((bs) => bs.some((b) => b.weight > 0));

/** Every backend's count is within one slot of its exact share M * w / W. */
function expectExactShares(table: Table): void {
  const counts = slotCounts(table);
  const total = table.backends.reduce((a, b) => a + b.weight, 0);
  table.backends.forEach((b, i) => {
    const exact = (table.size * b.weight) / total;
    expect(Math.abs(counts[i]! - exact), `${b.key} weight ${b.weight}`).toBeLessThan(1);
    if (b.weight === 0) expect(counts[i]).toBe(0);
  });
}

function expectEveryIndexValid(table: Table): void {
  expect(table.slots.length).toBe(table.size);
  for (const i of table.slots) expect(i).toBeLessThan(table.backends.length);
}

describe('fresh Maglev table', () => {
  it('fills every slot with a listed backend', () => {
    fc.assert(
      fc.property(fc.constantFrom(...SMALL_SIZES), backendsArb({ min: 1, max: 30, maxWeight: 100 }), (size, backends) => {
        expectEveryIndexValid(buildTable({ size, backends }));
      }),
    );
  });

  it('equal weights: max - min slot count <= 1', () => {
    fc.assert(
      fc.property(fc.constantFrom(...SMALL_SIZES), fc.integer({ min: 1, max: 60 }), (size, n) => {
        const backends = Array.from({ length: n }, (_, i) => ({ key: `be-${i}`, weight: 7 }));
        const counts = slotCounts(buildTable({ size, backends }));
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('random weights: every backend within one slot of its exact share; weight 0 gets none', () => {
    fc.assert(
      fc.property(fc.constantFrom(...SMALL_SIZES), backendsArb({ min: 1, max: 40, maxWeight: 1000 }), (size, backends) => {
        expectExactShares(buildTable({ size, backends }));
      }),
    );
  });

  it('any permutation of the input gives the same digest', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...SMALL_SIZES),
        backendsArb({ min: 1, max: 30, maxWeight: 50 }).chain((bs) => fc.tuple(fc.constant(bs), fc.shuffledSubarray(bs, { minLength: bs.length }))),
        (size, [backends, shuffled]) => {
          expect(tableDigest(buildTable({ size, backends: shuffled }))).toBe(tableDigest(buildTable({ size, backends })));
        },
      ),
    );
  });

  it("is pinned: a known set gives a known digest (guards accidental format changes; format 2 hashes the alternates too)", () => {
    const backends = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((key, i) => ({ key, weight: i + 1 }));
    const table = buildTable({ size: 251, backends });
    expect(Array.from(slotCounts(table))).toEqual([42, 84, 125]);
    expect(tableDigest(table)).toMatchInlineSnapshot(`"sha256:0a0c6029ba040dd536c6e9fee0167e29618383ea7b2edcfdb1b50ee15cf98d0c"`);
  });

  it('spreads each backend over the table (no long runs) at the default size', () => {
    const backends = Array.from({ length: 100 }, (_, i) => ({ key: `10.1.0.${i}`, weight: 1 }));
    const table = buildTable({ size: 65537, backends });
    let run = 1;
    let longest = 1;
    for (let s = 1; s < table.size; s++) {
      run = table.slots[s] === table.slots[s - 1] ? run + 1 : 1;
      longest = Math.max(longest, run);
    }
    // With 100 equal backends a run of k has probability ~ 100^-(k-1) per slot.
    expect(longest).toBeLessThan(6);
    expect(imbalance(table)).toBeLessThan(1.002);
  });

  it('refuses sizes that are not allowed primes, with a stable code', () => {
    for (const size of [0, 250, 65536, 65521, 2 ** 21]) {
      expect(() => buildTable({ size, backends: [{ key: 'a', weight: 1 }] })).toThrowError(
        expect.objectContaining({ code: ErrorCodes.BAD_TABLE_SIZE }),
      );
    }
    expect(TABLE_SIZES.at(-1)).toBeGreaterThanOrEqual(1048573);
  });

  it('refuses bad backend sets, with a stable code', () => {
    const bad: BackendWeight[][] = [
      [],
      [{ key: 'a', weight: 0 }],
      [{ key: 'a', weight: -1 }],
      [{ key: 'a', weight: 1.5 }],
      [{ key: '', weight: 1 }],
      [
        { key: 'a', weight: 1 },
        { key: 'a', weight: 2 },
      ],
    ];
    for (const backends of bad) {
      expect(() => buildTable({ size: 251, backends })).toThrowError(expect.objectContaining({ code: ErrorCodes.BAD_BACKENDS }));
    }
  });
});

type Step =
  | { op: 'add'; key: string; weight: number }
  | { op: 'remove'; pick: number }
  | { op: 'reweight'; pick: number; weight: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ op: fc.constant('add' as const), key: keyArb, weight: fc.integer({ min: 0, max: 20 }) }),
  fc.record({ op: fc.constant('remove' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('reweight' as const), pick: fc.nat(), weight: fc.integer({ min: 0, max: 20 }) }),
);

function apply(backends: BackendWeight[], step: Step): BackendWeight[] {
  if (step.op === 'add') {
    return backends.some((b) => b.key === step.key) ? backends : [...backends, { key: step.key, weight: step.weight }];
  }
  if (backends.length === 0) return backends;
  const i = step.pick % backends.length;
  if (step.op === 'remove') return backends.filter((_, j) => j !== i);
  return backends.map((b, j) => (j === i ? { ...b, weight: step.weight } : b));
}

describe('minimal-disruption successor', () => {
  it('moves exactly the minimum and keeps exact shares over random histories', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(251, 1021, 4093),
        backendsArb({ min: 1, max: 12, maxWeight: 20 }),
        fc.array(stepArb, { minLength: 1, maxLength: 12 }),
        (size, initial, steps) => {
          let table = buildTable({ size, backends: initial });
          let backends: BackendWeight[] = [...initial];
          for (const step of steps) {
            const next = apply(backends, step);
            if (!next.some((b) => b.weight > 0)) continue;
            const succ = successorTable(table, { size, backends: next });
            const change = tableChange(table, succ);
            expect(change.moved).toBe(change.minimum);
            expectEveryIndexValid(succ);
            expectExactShares(succ);
            // Again onto the same set: the very same slots (the operator relies on it to skip the successor).
            expect(Buffer.from(successorTable(succ, { size, backends: next }).slots.buffer).equals(Buffer.from(succ.slots.buffer))).toBe(true);
            table = succ;
            backends = next;
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('removal with equal weights moves exactly the removed backend slots', () => {
    for (const n of [3, 10, 100, 1000]) {
      const backends = Array.from({ length: n }, (_, i) => ({ key: `b${i}`, weight: 1 }));
      const table = buildTable({ size: 65537, backends });
      const removed = slotCounts(table)[1]!;
      const succ = successorTable(table, { size: 65537, backends: backends.filter((_, i) => i !== 1) });
      expect(tableChange(table, succ).moved).toBe(removed);
    }
  });

  it('removal with unequal weights moves the removed slots plus only what rounding forces', () => {
    // Survivors' shares grow; a floor can cross an integer, and keeping every
    // backend within one slot of its share may then force a slot or two more.
    const backends = Array.from({ length: 50 }, (_, i) => ({ key: `b${i}`, weight: 1 + (i % 4) }));
    const table = buildTable({ size: 65537, backends });
    const removed = slotCounts(table)[10]!;
    const succ = successorTable(table, { size: 65537, backends: backends.filter((_, i) => i !== 10) });
    const change = tableChange(table, succ);
    expect(change.moved).toBe(change.minimum);
    expect(change.moved - removed).toBeGreaterThanOrEqual(0);
    expect(change.moved - removed).toBeLessThanOrEqual(2);
    expectExactShares(succ);
  });

  it('addition moves only what the new backend is owed', () => {
    const backends = Array.from({ length: 100 }, (_, i) => ({ key: `b${i}`, weight: 1 }));
    const table = buildTable({ size: 65537, backends });
    const succ = successorTable(table, { size: 65537, backends: [...backends, { key: 'new', weight: 1 }] });
    const owed = slotCounts(succ)[succ.backends.findIndex((b) => b.key === 'new')]!;
    expect(owed).toBeGreaterThanOrEqual(Math.floor(65537 / 101));
    expect(tableChange(table, succ).moved).toBe(owed);
    const counts = slotCounts(succ);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
  });

  it('a weight change moves only the difference', () => {
    const backends = Array.from({ length: 10 }, (_, i) => ({ key: `b${i}`, weight: 10 }));
    const table = buildTable({ size: 65537, backends });
    const before = slotCounts(table)[0]!;
    const succ = successorTable(table, { size: 65537, backends: backends.map((b, i) => (i === 0 ? { ...b, weight: 5 } : b)) });
    const after = slotCounts(succ)[0]!;
    expect(tableChange(table, succ).moved).toBe(before - after);
  });

  it('moves far fewer slots than a fresh rebuild (regression: plain Maglev on change)', () => {
    const backends = Array.from({ length: 100 }, (_, i) => ({ key: `10.0.0.${i}`, weight: 1 }));
    const table = buildTable({ size: 65537, backends });
    const next = [...backends, { key: '10.0.1.0', weight: 1 }];
    const succ = tableChange(table, successorTable(table, { size: 65537, backends: next }));
    const fresh = tableChange(table, buildTable({ size: 65537, backends: next }));
    expect(succ.moved).toBe(succ.minimum);
    expect(fresh.moved).toBeGreaterThan(1.3 * succ.minimum);
  });

  it('is deterministic given (previous table, new set), in any input order', () => {
    const backends = Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, weight: (i % 3) + 1 }));
    const table = buildTable({ size: 4093, backends });
    const next = [...backends.slice(3), { key: 'z', weight: 2 }];
    const a = successorTable(table, { size: 4093, backends: next });
    const b = successorTable(table, { size: 4093, backends: [...next].reverse() });
    expect(tableDigest(a)).toBe(tableDigest(b));
  });

  it('with the same set, changes nothing', () => {
    const backends = Array.from({ length: 7 }, (_, i) => ({ key: `k${i}`, weight: i + 1 }));
    const table = buildTable({ size: 1021, backends });
    expect(tableDigest(successorTable(table, { size: 1021, backends }))).toBe(tableDigest(table));
  });

  it('a size change is a fresh table', () => {
    const backends = [{ key: 'a', weight: 1 }, { key: 'b', weight: 1 }];
    const table = buildTable({ size: 251, backends });
    expect(tableDigest(successorTable(table, { size: 509, backends }))).toBe(tableDigest(buildTable({ size: 509, backends })));
  });
});

describe('rounding', () => {
  it('minimumMoves agrees with a brute force over all valid roundings (small cases)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 6 }).filter((w) => w.some((x) => x > 0)),
        fc.array(fc.nat({ max: 251 }), { minLength: 6, maxLength: 6 }),
        (weights, heldRaw) => {
          const size = 251;
          const backends = weights.map((weight, i) => ({ key: `b${i}`, weight }));
          const held = heldRaw.slice(0, weights.length);
          const total = weights.reduce((a, b) => a + b, 0);
          const floors = weights.map((w) => Math.floor((size * w) / total));
          const fractional = weights.map((w) => (size * w) % total !== 0);
          const leftover = size - floors.reduce((a, b) => a + b, 0);
          let best = Infinity;
          for (let mask = 0; mask < 1 << weights.length; mask++) {
            let ones = 0;
            let ok = true;
            for (let i = 0; i < weights.length; i++) {
              if (mask & (1 << i)) {
                ones++;
                if (!fractional[i]) ok = false;
              }
            }
            if (!ok || ones !== leftover) continue;
            const cost = floors.reduce((acc, f, i) => acc + Math.max(0, f + (mask & (1 << i) ? 1 : 0) - held[i]!), 0);
            best = Math.min(best, cost);
          }
          expect(minimumMoves(size, backends, held)).toBe(best);
          const q = quotas(size, backends, held);
          expect(q.reduce((a, b) => a + b, 0)).toBe(size);
          expect(q.reduce((acc, qi, i) => acc + Math.max(0, qi - held[i]!), 0)).toBe(best);
        },
      ),
    );
  });
});
