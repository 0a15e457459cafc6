// alternates.ts: the precomputed second choice of every table slot, so a
// node routes around a dead backend with one map write and no new table.
// The alternate of a slot owned by X is the owner that slot gets in the
// minimal-disruption successor of the table with X taken out (listed at
// weight 0, as the operator lists a backend it takes out for its health).
// For every single backend X, then:
//   - X's slots go to the other serving backends so that each ends within
//     one slot of its exact share of the table without X (the successor's
//     largest-remainder quotas): the split of X's slots follows the weights,
//     within two slots of an exact split of X's slots alone;
//   - when the operator later publishes the successor without X, every slot
//     of X moves to exactly its alternate: no flow moves twice.
// A table with fewer than two serving backends has no alternates. Pure.
import { successorTable, type Table } from './maglev.js';

/** A slot without an alternate. */
export const NO_ALTERNATE = 0xffffffff;

/**
 * Per slot, the position (in table.backends) of its alternate owner, or
 * NO_ALTERNATE. One successor per backend that holds slots: O(N * M).
 */
export function computeAlternates(table: Table): Uint32Array {
  const out = new Uint32Array(table.size).fill(NO_ALTERNATE);
  if (table.size === 0) return out;
  const held = new Int32Array(table.backends.length);
  for (let s = 0; s < table.size; s++) held[table.slots[s]!]!++;
  if (table.backends.filter((b, i) => b.weight > 0 && held[i]! > 0).length < 2) return out;
  const bySlotOwner: number[][] = table.backends.map(() => []);
  for (let s = 0; s < table.size; s++) bySlotOwner[table.slots[s]!]!.push(s);
  table.backends.forEach((_, x) => {
    if (held[x] === 0) return;
    // Only X's weight changes, so the successor lists the same backends in the same order.
    const next = successorTable(table, { size: table.size, backends: table.backends.map((b, i) => (i === x ? { key: b.key, weight: 0 } : b)) });
    for (const s of bySlotOwner[x]!) out[s] = next.slots[s]!;
  });
  return out;
}

/** The table with its alternates (computed when it has none). */
export function withAlternates(table: Table): Table {
  return table.alternates !== undefined ? table : { ...table, alternates: computeAlternates(table) };
}
