// table-memo.ts: a table computed once for every VIP that asks for the same
// one. A table and its alternates depend only on the table they succeed, the
// size and the backends with their weights, never on the VIP: the hundred
// ports of one Service, or a thousand VIPs over one pool, ask for the same
// table, and one backend failing asks each of them for the same successor.
// The memo answers the second ask from the first (a successor with its
// alternates is about a hundred milliseconds at 100 backends x 65537 slots),
// and interns equal tables (by digest) so a thousand VIPs hold one copy.
// Pure computation with state its caller owns; no I/O.
import { withAlternates } from './alternates.js';
import { canonicalBackends } from './backends.js';
import { tableDigest } from './digest.js';
import { buildTable, successorTable, type Table, type TableRequest } from './maglev.js';
import { withoutSecondHops, withSecondHops } from './second-hops.js';

const digests = new WeakMap<Table, string>();

/** A table's digest, computed once per table object (a SHA-256 over every slot). */
export function digestOf(table: Table): string {
  let d = digests.get(table);
  if (d === undefined) digests.set(table, (d = tableDigest(table)));
  return d;
}

/** Records the digest of a table checked as it was decoded (its digest was just computed there). */
export function knownDigest(table: Table, digest: string): void {
  digests.set(table, digest);
}

/** Computed tables kept by default: a few generations of a few backend pools. */
export const DEFAULT_MEMO_ENTRIES = 16;

export class TableMemo {
  readonly #capacity: number;
  /** Request key -> the table computed for it; in use order (oldest first), bounded. */
  readonly #computed = new Map<string, Table>();
  /** Digest -> the one table object held for it, while anything holds it. */
  readonly #interned = new Map<string, WeakRef<Table>>();
  readonly #forget = new FinalizationRegistry<string>((digest) => {
    if (this.#interned.get(digest)?.deref() === undefined) this.#interned.delete(digest);
  });
  #hits = 0;
  #misses = 0;

  constructor(capacity = DEFAULT_MEMO_ENTRIES) {
    this.#capacity = capacity;
  }

  /** Requests answered from the memo, and computed. */
  get stats(): { readonly hits: number; readonly misses: number } {
    return { hits: this.#hits, misses: this.#misses };
  }

  /**
   * The table `request` gets, with its alternates: the minimal-disruption
   * successor of `previous` when it has the same size, else a fresh table.
   */
  next(previous: Table | null, request: TableRequest): Table {
    const from = previous !== null && previous.size === request.size && previous.size !== 0 ? previous : null;
    const backends = canonicalBackends(request.backends);
    const key = `${from === null ? 'fresh' : digestOf(from)}|${request.size}|${backends.map((b) => `${b.key}=${b.weight}`).join(',')}`;
    return this.#remember(key, () => withAlternates(from === null ? buildTable(request) : successorTable(from, request)));
  }

  /** The table computed for `key` (moved to the newest end), or else `compute`'s, interned and kept. */
  #remember(key: string, compute: () => Table): Table {
    const hit = this.#computed.get(key);
    if (hit !== undefined) {
      this.#hits++;
      this.#computed.delete(key);
      this.#computed.set(key, hit);
      return hit;
    }
    this.#misses++;
    const table = this.intern(compute());
    this.#computed.set(key, table);
    if (this.#computed.size > this.#capacity) this.#computed.delete(this.#computed.keys().next().value!);
    return table;
  }

  /**
   * `next` with its second hops after `previous` (second-hops.ts), computed
   * once per distinct ask (a thousand VIPs over one pool ask the same) and
   * interned. `eligible`: the backends that may be second hops.
   */
  secondHops(previous: Table | null, next: Table, carry: boolean, eligible: ReadonlySet<string>): Table {
    const bare = withoutSecondHops(next);
    if (previous === null || previous.size !== bare.size || bare.size === 0) return bare;
    const key = `hops|${digestOf(previous)}|${digestOf(bare)}|${String(carry)}|${[...eligible].sort().join(',')}`;
    return this.#remember(key, () => withSecondHops(previous, bare, carry, (k) => eligible.has(k)));
  }

  /** The table held for this digest, if one is. */
  held(digest: string): Table | undefined {
    return this.#interned.get(digest)?.deref();
  }

  /** The table object held for `table`'s digest (itself when none is): equal tables share one copy. */
  intern(table: Table): Table {
    const digest = digestOf(table);
    const held = this.#interned.get(digest)?.deref();
    if (held !== undefined) return held;
    this.#interned.set(digest, new WeakRef(table));
    this.#forget.register(table, digest);
    return table;
  }
}
