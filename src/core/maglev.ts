// maglev.ts: the consistent-hash lookup table (Maglev, Eisenbud et al., NSDI
// 2016) with exact weights, and its minimal-disruption successor.
//
// Shares. A backend of weight w in a table of M slots is owed M * w / W slots
// (W = total weight). Shares are rounded by largest remainder: every backend
// gets floor(M * w / W), and the L slots left over go one each to the L
// backends with the largest remainders (ties: key order). Every backend so
// ends within one slot of its exact share and the counts sum to M. A fresh
// table uses this rounding; a successor prefers, among backends with a
// remainder, those already holding more than their floor, which is the
// rounding that moves the fewest slots (see minimumMoves).
//
// Filling. Each backend has offset = h1(key) mod M and skip = h2(key) mod
// (M - 1) + 1 (h1, h2: MurmurHash3 of the key's UTF-8 bytes with two seeds),
// so its preference list offset + j * skip (mod M) visits every slot of the
// prime-sized table. In turns, in key order, every backend still owed slots
// takes the next free slot of its list, until it has its quota. With equal
// weights this is exactly the paper's algorithm; with weights, backends simply
// stop taking turns when their quota is met.
//
// Successor. Given the previous table and a new backend set: slots of removed
// backends are freed; a backend holding more than its new quota frees the
// surplus, giving up its least-preferred slots (highest j); then the same
// turn-taking fills only the freed slots. A slot changes owner only if its
// owner was removed or had a surplus, so the number of moved slots equals the
// total deficit, which is the minimum any table with these shares can reach.

import { canonicalBackends, type BackendWeight } from './backends.js';
import { ErrorCodes, XdplbError } from './errors.js';
import { murmur3 } from './murmur3.js';
import { isTableSize, TABLE_SIZES, type TableSize } from './table-sizes.js';

export interface Table {
  /** 0 only for the empty table (no backend takes new flows: every packet dropped). */
  readonly size: TableSize | 0;
  /** The backend set, sorted by key. Weight-0 backends are listed with no slots. */
  readonly backends: readonly BackendWeight[];
  /** slots[s] = index into `backends` of the backend that owns slot s. */
  readonly slots: Uint32Array;
  /**
   * alternates[s] = index into `backends` of the slot's alternate owner, taken
   * while its owner is down (core/alternates.ts; 0xffffffff: none). Absent:
   * no alternates computed (a table built or succeeded here has none).
   */
  readonly alternates?: Uint32Array;
  /**
   * secondHops[s] = index into `backends` of the slot's previous owner, to
   * which the new owner's host forwards a packet of a flow it does not know
   * (second chance, core/second-hops.ts; 0xffffffff: none). Absent: no slot
   * has one.
   */
  readonly secondHops?: Uint32Array;
}

export interface TableRequest {
  readonly size: number;
  readonly backends: readonly BackendWeight[];
}

/** Seeds of the two backend-key hashes. Part of the table format: changing them changes every table. */
export const OFFSET_SEED = 0x2c9277b5;
export const SKIP_SEED = 0x7a3d1e4f;

const encoder = new TextEncoder();

function checkSize(size: number): TableSize {
  if (!isTableSize(size)) {
    throw new XdplbError(
      ErrorCodes.BAD_TABLE_SIZE,
      `table size ${String(size)} is not allowed; use one of ${TABLE_SIZES.join(', ')}`,
    );
  }
  return size;
}

/** Each backend's place in Maglev's permutation: where its list starts and its stride. */
export function permutationParameters(size: number, backends: readonly BackendWeight[]): { offset: Int32Array; skip: Int32Array } {
  const offset = new Int32Array(backends.length);
  const skip = new Int32Array(backends.length);
  let scratch = new Uint8Array(256);
  for (let i = 0; i < backends.length; i++) {
    const key = backends[i]!.key;
    if (key.length * 3 > scratch.length) scratch = new Uint8Array(key.length * 3);
    const len = encoder.encodeInto(key, scratch).written;
    offset[i] = murmur3(scratch, OFFSET_SEED, len) % size;
    skip[i] = (murmur3(scratch, SKIP_SEED, len) % (size - 1)) + 1;
  }
  return { offset, skip };
}

/**
 * Slot counts per backend (largest remainder, see the file comment). With
 * `held` (current counts per backend), backends already above their floor
 * are preferred for the leftover slots, which minimizes the slots moved.
 */
export function quotas(size: number, backends: readonly BackendWeight[], held?: ArrayLike<number>): Int32Array {
  const n = backends.length;
  let total = 0;
  for (const b of backends) total += b.weight;
  const q = new Int32Array(n);
  const rem = new Float64Array(n);
  let left = size;
  for (let i = 0; i < n; i++) {
    const scaled = size * backends[i]!.weight; // < 2^41: exact in a double
    const f = Math.floor(scaled / total);
    q[i] = f;
    rem[i] = scaled - f * total;
    left -= f;
  }
  if (left === 0) return q;
  // Rank candidates by one sortable number: (prefer, remainder, -index). With
  // remainder < total <= MAX_BACKENDS * MAX_WEIGHT the key stays below
  // 2 * total * n < 2^53, so it is exact and a plain numeric sort suffices.
  const order = new Float64Array(n);
  let candidates = 0;
  for (let i = 0; i < n; i++) {
    if (rem[i]! === 0) continue;
    const prefer = held !== undefined && held[i]! > q[i]! ? total : 0;
    order[candidates++] = (prefer + rem[i]!) * n + (n - 1 - i);
  }
  const ranked = order.subarray(0, candidates).sort();
  for (let k = 0; k < left; k++) {
    const key = ranked[candidates - 1 - k]!;
    q[n - 1 - (key % n)]!++;
  }
  return q;
}

/**
 * The fewest slots that must change owner to go from `held` counts to any
 * table whose counts are within one slot of the exact shares (and sum to M).
 * Computed from the counts alone, independently of how a table is filled.
 */
export function minimumMoves(size: number, backends: readonly BackendWeight[], held: ArrayLike<number>): number {
  let total = 0;
  for (const b of backends) total += b.weight;
  let base = 0;
  let floors = 0;
  let roundable = 0; // backends with a fractional share
  let roundableForFree = 0; // ... that already hold more than their floor
  for (let i = 0; i < backends.length; i++) {
    const scaled = size * backends[i]!.weight;
    const f = Math.floor(scaled / total);
    floors += f;
    base += Math.max(0, f - held[i]!);
    if (scaled - f * total > 0) {
      roundable++;
      if (held[i]! > f) roundableForFree++;
    }
  }
  const leftover = size - floors;
  if (leftover > roundable) throw new Error('unreachable: more leftover slots than fractional shares');
  return base + Math.max(0, leftover - roundableForFree);
}

/** Fills the free slots (owner -1) in turns until every backend has its quota. */
function fillInTurns(
  size: number,
  owner: Int32Array,
  offset: Int32Array,
  skip: Int32Array,
  need: Int32Array,
): void {
  const active = new Int32Array(need.length);
  let nActive = 0;
  for (let i = 0; i < need.length; i++) if (need[i]! > 0) active[nActive++] = i;
  const pos = Int32Array.from(offset);
  while (nActive > 0) {
    let kept = 0;
    for (let a = 0; a < nActive; a++) {
      const i = active[a]!;
      const stride = skip[i]!;
      let p = pos[i]!;
      while (owner[p] !== -1) {
        p += stride;
        if (p >= size) p -= size;
      }
      owner[p] = i;
      p += stride;
      if (p >= size) p -= size;
      pos[i] = p;
      if (--need[i]! > 0) active[kept++] = i;
    }
    nActive = kept;
  }
}

function toTable(size: TableSize, backends: readonly BackendWeight[], owner: Int32Array): Table {
  const slots = new Uint32Array(owner.buffer, owner.byteOffset, owner.length);
  return { size, backends, slots };
}

/** A fresh Maglev table for this backend set. Deterministic in any input order. */
export function buildTable(request: TableRequest): Table {
  const size = checkSize(request.size);
  const backends = canonicalBackends(request.backends);
  const { offset, skip } = permutationParameters(size, backends);
  const owner = new Int32Array(size).fill(-1);
  fillInTurns(size, owner, offset, skip, quotas(size, backends));
  return toTable(size, backends, owner);
}

/** Modular inverse of a mod the prime m (extended Euclid). */
function inverseMod(a: number, m: number): number {
  let [r0, r1] = [m, a % m];
  let [t0, t1] = [0, 1];
  while (r1 !== 0) {
    const q = Math.floor(r0 / r1);
    [r0, r1] = [r1, r0 - q * r1];
    [t0, t1] = [t1, t0 - q * t1];
  }
  return ((t0 % m) + m) % m;
}

/** For each previous backend index, its index in `next`, or -1 if it is gone. */
function indexMap(previous: readonly BackendWeight[], next: readonly BackendWeight[]): Int32Array {
  const byKey = new Map<string, number>();
  next.forEach((b, i) => byKey.set(b.key, i));
  return Int32Array.from(previous, (b) => byKey.get(b.key) ?? -1);
}

/**
 * Frees, for every backend i with surplus[i] > 0, its surplus[i] least-preferred
 * slots (highest rank j in its list offset + j * skip). One pass over the table
 * buckets each such backend's slots by backend, as ranks; each bucket is then
 * sorted (native typed-array sort) and its top ranks released. O(M) overall.
 */
function releaseLeastPreferred(
  size: number,
  owner: Int32Array,
  held: Int32Array,
  surplus: Int32Array,
  offset: Int32Array,
  skip: Int32Array,
): void {
  const n = surplus.length;
  const start = new Int32Array(n + 1);
  const inv = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const bucket = surplus[i]! > 0 ? held[i]! : 0;
    start[i + 1] = start[i]! + bucket;
    if (bucket > 0) inv[i] = inverseMod(skip[i]!, size);
  }
  const ranks = new Int32Array(start[n]!);
  const next = start.slice(0, n);
  for (let s = 0; s < size; s++) {
    const i = owner[s]!;
    if (i >= 0 && surplus[i]! > 0) {
      // Rank j of slot s: s = offset + j * skip (mod M), so j = (s - offset) * skip^-1 (mod M); < 2^40, exact.
      ranks[next[i]!++] = (((s - offset[i]! + size) % size) * inv[i]!) % size;
    }
  }
  for (let i = 0; i < n; i++) {
    if (surplus[i]! === 0) continue;
    const bucket = ranks.subarray(start[i]!, start[i + 1]!).sort();
    for (let k = bucket.length - surplus[i]!; k < bucket.length; k++) {
      owner[(offset[i]! + ((bucket[k]! * skip[i]!) % size)) % size] = -1;
    }
  }
}

/**
 * The minimal-disruption successor of `previous` for a new backend set (see the
 * file comment). A different size cannot keep any slot: that is a fresh table.
 */
export function successorTable(previous: Table, request: TableRequest): Table {
  const size = checkSize(request.size);
  if (size !== previous.size) return buildTable(request);
  const backends = canonicalBackends(request.backends);
  const { offset, skip } = permutationParameters(size, backends);

  const map = indexMap(previous.backends, backends);
  const owner = new Int32Array(size);
  const held = new Int32Array(backends.length);
  for (let s = 0; s < size; s++) {
    const i = map[previous.slots[s]!]!;
    owner[s] = i;
    if (i >= 0) held[i]!++;
  }
  const quota = quotas(size, backends, held);

  // Surplus: each backend over quota frees its least-preferred slots.
  const surplus = new Int32Array(backends.length);
  let anySurplus = false;
  for (let i = 0; i < backends.length; i++) {
    surplus[i] = Math.max(0, held[i]! - quota[i]!);
    if (surplus[i]! > 0) anySurplus = true;
  }
  if (anySurplus) releaseLeastPreferred(size, owner, held, surplus, offset, skip);

  const need = new Int32Array(backends.length);
  for (let i = 0; i < backends.length; i++) need[i] = quota[i]! - Math.min(held[i]!, quota[i]!);
  fillInTurns(size, owner, offset, skip, need);
  return toTable(size, backends, owner);
}

/** Slots per backend, in `table.backends` order. */
export function slotCounts(table: Table): Int32Array {
  const counts = new Int32Array(table.backends.length);
  for (let s = 0; s < table.size; s++) counts[table.slots[s]!]!++;
  return counts;
}

export interface TableChange {
  /** Slots whose owner differs between the two tables. */
  readonly moved: number;
  /** The fewest slots any balanced table for the new set must move (minimumMoves). */
  readonly minimum: number;
}

/** How many slots changed owner from `previous` to `next` (same size), and the minimum. */
export function tableChange(previous: Table, next: Table): TableChange {
  if (previous.size !== next.size) throw new RangeError('tables of different sizes share no slots');
  const map = indexMap(previous.backends, next.backends);
  const held = new Int32Array(next.backends.length);
  let moved = 0;
  for (let s = 0; s < next.size; s++) {
    const i = map[previous.slots[s]!]!;
    if (i >= 0) held[i]!++;
    if (i !== next.slots[s]) moved++;
  }
  return { moved, minimum: minimumMoves(next.size, next.backends, held) };
}

/** The largest ratio of a backend's actual share to its ideal share (1 = perfect). */
export function imbalance(table: Table): number {
  const counts = slotCounts(table);
  let total = 0;
  for (const b of table.backends) total += b.weight;
  let worst = 0;
  table.backends.forEach((b, i) => {
    if (b.weight > 0) worst = Math.max(worst, counts[i]! / table.size / (b.weight / total));
  });
  return worst;
}
