// table-sizes.ts: the lookup-table sizes xdplb accepts. Maglev needs a prime
// size so every backend's permutation (offset + j * skip mod M) visits every
// slot. The list is the largest prime below each power of two from 2^8 to 2^20,
// except that 2^16 + 1 = 65537 (itself prime, Katran's default) stands in for
// 65521. A table size is a per-VIP choice; the datapath indexes hash % M.

export const TABLE_SIZES = [
  251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537, 131071, 262139, 524287, 1048573,
] as const;

export type TableSize = (typeof TABLE_SIZES)[number];

export const DEFAULT_TABLE_SIZE: TableSize = 65537;
export const MAX_TABLE_SIZE: TableSize = 1048573;

/** Below this many slots per backend, Maglev's balance and disruption degrade. */
export const MIN_SLOTS_PER_BACKEND = 100;

export function isTableSize(n: number): n is TableSize {
  return (TABLE_SIZES as readonly number[]).includes(n);
}

/** The smallest allowed size giving at least MIN_SLOTS_PER_BACKEND slots per backend. */
export function recommendedTableSize(backends: number): TableSize {
  for (const m of TABLE_SIZES) if (m >= backends * MIN_SLOTS_PER_BACKEND) return m;
  return MAX_TABLE_SIZE;
}
