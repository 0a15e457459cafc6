// table-memo.test.ts: the memo answers a repeated request with the very table
// it computed (alternates included), keyed by what the table depends on (the
// table it succeeds, size, backends and weights), and holds equal tables once.
import { describe, expect, it } from 'vitest';
import { withAlternates } from '../../src/core/alternates.js';
import { buildTable, successorTable } from '../../src/core/maglev.js';
import { digestOf, TableMemo } from '../../src/core/table-memo.js';

const pool = (n: number, weight = 1): { key: string; weight: number }[] => Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i + 1}`, weight }));

describe('TableMemo', () => {
  it('computes a request once, in any backend order, and gives the same table as computing it directly', () => {
    const memo = new TableMemo();
    const first = memo.next(null, { size: 1021, backends: pool(5) });
    const again = memo.next(null, { size: 1021, backends: pool(5).reverse() });
    expect(again).toBe(first);
    expect(memo.stats).toEqual({ hits: 1, misses: 1 });
    expect(digestOf(first)).toBe(digestOf(withAlternates(buildTable({ size: 1021, backends: pool(5) }))));
  });

  it('keys a successor by the table it succeeds and by the weights', () => {
    const memo = new TableMemo();
    const base = memo.next(null, { size: 1021, backends: pool(5) });
    const without = pool(5).map((b, i) => (i === 2 ? { ...b, weight: 0 } : b));
    const succ = memo.next(base, { size: 1021, backends: without });
    expect(digestOf(succ)).toBe(digestOf(withAlternates(successorTable(base, { size: 1021, backends: without }))));
    // The same request from another (equal) published copy of the base: answered from the memo.
    const copy = { ...base, slots: base.slots.slice(), alternates: base.alternates!.slice() };
    expect(memo.next(copy, { size: 1021, backends: without })).toBe(succ);
    // Another weight is another table.
    expect(memo.next(base, { size: 1021, backends: pool(5, 2) })).not.toBe(succ);
    // Another size is built fresh, not succeeded.
    expect(memo.next(base, { size: 2039, backends: without }).size).toBe(2039);
    expect(memo.stats.misses).toBe(4);
  });

  it('forgets the least recently used request past its capacity', () => {
    const memo = new TableMemo(2);
    const a = memo.next(null, { size: 251, backends: pool(2) });
    memo.next(null, { size: 251, backends: pool(3) });
    memo.next(null, { size: 251, backends: pool(2) }); // a used again
    memo.next(null, { size: 251, backends: pool(4) }); // evicts pool(3)
    expect(memo.next(null, { size: 251, backends: pool(2) })).toBe(a);
    memo.next(null, { size: 251, backends: pool(3) });
    expect(memo.stats).toEqual({ hits: 2, misses: 4 });
  });

  it('interns equal tables: the first one stays the one held', () => {
    const memo = new TableMemo();
    const t = withAlternates(buildTable({ size: 251, backends: pool(3) }));
    const twin = withAlternates(buildTable({ size: 251, backends: pool(3) }));
    expect(memo.intern(t)).toBe(t);
    expect(memo.intern(twin)).toBe(t);
    expect(memo.held(digestOf(t))).toBe(t);
    expect(memo.held('sha256:none')).toBeUndefined();
  });
});
