// second-hops.ts: second chance without state on the load balancer (issue
// 17). When a table succeeds another, every slot whose owner changed keeps
// its previous owner as a second hop. The new owner's host delivers what it
// knows (a SYN, a packet of a local connection) and forwards anything else to
// the second hop, so the connections of the previous owner run to their end
// while new ones land on the new owner. A second hop is kept over later
// tables while its drain period runs (the caller says whether it still does:
// `carry`), never to a backend the new table no longer lists or the caller
// does not allow (one taken out for its health: it answers nothing), and
// never to the slot's own owner. Slot indices are only comparable between
// tables of one size, so a resize keeps none. Only one previous owner is
// kept per slot: a slot that moves twice within a drain period forgets the
// first. Pure.
import type { Table } from './maglev.js';

/** A slot without a second hop. */
export const NO_HOP = 0xffffffff;

/**
 * `next` with the second hops its slots get after `previous` (none when
 * nothing qualifies: the table is returned as it is, without secondHops).
 * `carry`: the previous table's own second hops are still within their
 * drain period, so those of unchanged slots are kept. `eligible(key)`: the
 * backend may be a second hop.
 */
export function withSecondHops(previous: Table | null, next: Table, carry: boolean, eligible: (key: string) => boolean): Table {
  const bare = withoutSecondHops(next);
  if (previous === null || previous.size !== next.size || next.size === 0) return bare;
  const position = new Map(next.backends.map((b, i) => [b.key, i]));
  // Previous backend index -> its index in `next` (NO_HOP: not listed), and which of `next` may be hops.
  const moved = Uint32Array.from(previous.backends, (b) => position.get(b.key) ?? NO_HOP);
  const allowed = next.backends.map((b) => eligible(b.key));
  const hops = new Uint32Array(next.size).fill(NO_HOP);
  let any = false;
  for (let s = 0; s < next.size; s++) {
    const owner = next.slots[s]!;
    const was = moved[previous.slots[s]!]!;
    // The owner changed: the previous one is the hop. Unchanged: the hop it had, while its drain runs.
    let hop = was !== owner ? was : carry && previous.secondHops !== undefined && previous.secondHops[s] !== NO_HOP ? moved[previous.secondHops[s]!]! : NO_HOP;
    if (hop === owner || (hop !== NO_HOP && !allowed[hop])) hop = NO_HOP;
    hops[s] = hop;
    if (hop !== NO_HOP) any = true;
  }
  return any ? { ...bare, secondHops: hops } : bare;
}

/** The table without second hops (itself when it has none). */
export function withoutSecondHops(table: Table): Table {
  if (table.secondHops === undefined) return table;
  const { secondHops: _dropped, ...rest } = table;
  return rest;
}

/** Slots with a second hop, per backend index of the hop (what status and metrics show of a drain). */
export function secondHopCounts(table: Table): Int32Array {
  const counts = new Int32Array(table.backends.length);
  if (table.secondHops === undefined) return counts;
  for (const h of table.secondHops) if (h !== NO_HOP) counts[h]!++;
  return counts;
}
