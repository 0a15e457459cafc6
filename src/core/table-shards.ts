// table-shards.ts: a table as the operator publishes it: VipTable objects,
// each carrying a range of at most SHARD_SLOTS slots (so the largest table
// stays well inside the API's object size limit), the whole table's backend
// list, size and digest. A table is content-addressed: its shards are named
// after its digest and shared by every VIP that has it; a VIP's generation
// (which of its tables is newest) comes with the VIP's entry in the table
// (api/viptable.ts), or, in the earlier form, with shards of its own. A
// table is immutable: a new one is written beside the old. An agent
// programs a generation only when every shard of it is present and the
// assembled table has the digest. The empty table (no backend takes new
// flows) is one shard of size 0 with no backends: nodes drop the VIP's
// packets. Each slot's alternate (core/alternates.ts) and second hop
// (core/second-hops.ts) travel beside its owner, in the same width.
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { canonicalBackends, type BackendWeight } from './backends.js';
import { tableDigest } from './digest.js';
import { ErrorCodes, XdplbError } from './errors.js';
import type { Table } from './maglev.js';
import { digestOf, knownDigest } from './table-memo.js';
import { isTableSize } from './table-sizes.js';
import { NO_ALTERNATE } from './alternates.js';

const scratchArrays: [Uint32Array, Uint32Array, Uint32Array] = [new Uint32Array(0), new Uint32Array(0), new Uint32Array(0)];
let scratchBytes = Buffer.alloc(0);

/** The bytes of a base64 string; with `scratch`, in a buffer reused from call to call. */
function fromBase64(text: string, scratch: boolean): Buffer {
  if (!scratch) return Buffer.from(text, 'base64');
  const room = Math.ceil(text.length / 4) * 3;
  if (scratchBytes.length < room) scratchBytes = Buffer.alloc(Math.max(room, 2 * scratchBytes.length));
  return scratchBytes.subarray(0, scratchBytes.write(text, 'base64'));
}

/** Reused decode array `which` (slots 0, alternates 1, second hops 2), `size` long; every slot is written by the decode. */
function scratchArray(which: 0 | 1 | 2, size: number): Uint32Array {
  if (scratchArrays[which].length < size) scratchArrays[which] = new Uint32Array(size);
  return scratchArrays[which].subarray(0, size);
}

/** Slots per shard: 262144 u16 slots are 512 KiB raw, ~350-700 KiB base64 of deflate. */
export const SHARD_SLOTS = 262144;

/** One shard of a table, as published: what any VIP with this table reads. */
export interface TableContentSpec {
  readonly size: number;
  readonly digest: string;
  readonly backends: readonly BackendWeight[];
  readonly shard: { readonly index: number; readonly count: number; readonly start: number; readonly end: number };
  readonly slots: { readonly encoding: 'u8' | 'u16'; readonly deflated: string };
  /** Each slot's alternate owner, in the same encoding; the encoding's all-ones value: none. Absent: no alternates. */
  readonly alternates?: { readonly deflated: string };
  /** Each slot's second hop, in the same encoding; the encoding's all-ones value: none. Absent: no second hops. */
  readonly secondHops?: { readonly deflated: string };
}

/** A shard as one VIP's generation: the VIP (for messages) and which of its tables it is. */
export interface TableShardSpec extends TableContentSpec {
  readonly vip: string;
  readonly generation: number;
}

/** Hex digits of the digest in a table's object names: 64 bits, and the whole digest is checked on reading. */
const NAME_DIGEST_HEX = 16;

/** The VipTable object name of shard `index` of the table with `digest`: `xdplb-<16 hex digits>-<index>`. */
export function tableObjectName(digest: string, index: number): string {
  return `xdplb-${digest.replace(/^sha256:/, '').slice(0, NAME_DIGEST_HEX)}-${index}`;
}

/** A table's shard payloads: deflated once per table object, however many VIPs publish that table. */
interface Encoded {
  readonly digest: string;
  readonly encoding: 'u8' | 'u16';
  readonly backends: readonly BackendWeight[];
  readonly shards: readonly { readonly start: number; readonly end: number; readonly slots: string; readonly alternates?: string; readonly secondHops?: string }[];
}
const encodedTables = new WeakMap<Table, Encoded>();

function encodedOf(table: Table): Encoded {
  const known = encodedTables.get(table);
  if (known !== undefined) return known;
  // The all-ones value of the width marks "no alternate", so u8 holds at most 255 backends.
  const encoding = table.backends.length <= 255 ? 'u8' : 'u16';
  const none = encoding === 'u8' ? 0xff : 0xffff;
  const count = Math.max(1, Math.ceil(table.size / SHARD_SLOTS));
  const pack = (values: Uint32Array, start: number, end: number): string => {
    const raw = Buffer.allocUnsafe((end - start) * (encoding === 'u8' ? 1 : 2));
    for (let s = start, at = 0; s < end; s++) {
      const v = values[s] === NO_ALTERNATE ? none : values[s]!;
      raw[at++] = v & 0xff;
      if (encoding === 'u16') raw[at++] = v >>> 8;
    }
    return deflateRawSync(raw, { level: 6 }).toString('base64');
  };
  const shards = Array.from({ length: count }, (_, index) => {
    const start = index * SHARD_SLOTS;
    const end = Math.min(table.size, start + SHARD_SLOTS);
    return {
      start,
      end,
      slots: pack(table.slots, start, end),
      ...(table.alternates === undefined ? {} : { alternates: pack(table.alternates, start, end) }),
      ...(table.secondHops === undefined ? {} : { secondHops: pack(table.secondHops, start, end) }),
    };
  });
  const encoded: Encoded = { digest: digestOf(table), encoding, backends: table.backends.map((b) => ({ key: b.key, weight: b.weight })), shards };
  encodedTables.set(table, encoded);
  return encoded;
}

/** The shards of a table (deflated once per table object, however many VIPs publish it). */
export function encodeTable(table: Table): TableContentSpec[] {
  const { digest, encoding, backends, shards } = encodedOf(table);
  return shards.map(({ start, end, slots, alternates, secondHops }, index) => ({
    size: table.size,
    digest,
    backends,
    shard: { index, count: shards.length, start, end },
    slots: { encoding, deflated: slots },
    ...(alternates === undefined ? {} : { alternates: { deflated: alternates } }),
    ...(secondHops === undefined ? {} : { secondHops: { deflated: secondHops } }),
  }));
}

function bad(message: string): XdplbError {
  return new XdplbError(ErrorCodes.BAD_TABLE_FILE, message);
}

/**
 * The table of the newest generation whose shards are all present and agree,
 * or null while a generation is incomplete. Throws BAD_TABLE_FILE when a
 * complete set is inconsistent (its digest does not match). `verify: false`
 * skips the digest, for shards this very function verified before (a
 * generation is immutable): decoding them again costs no hash. `scratch`:
 * decode into arrays reused from call to call (the table returned is valid
 * only until the next such call): for callers that read it at once and drop
 * it, so a thousand tables decoded cost no thousand allocations.
 */
export function assembleShards(
  shards: readonly TableShardSpec[],
  { verify = true, scratch = false }: { verify?: boolean; scratch?: boolean } = {},
): { table: Table; generation: number; digest: string } | null {
  const whole = newestWhole(shards);
  if (whole === null) return null;
  const { generation, shards: list } = whole;
  const first = list[0]!;
  const count = first.shard.count;
  const complete = new Map(list.map((s) => [s.shard.index, s]));
  if (!isTableSize(first.size) && !(first.size === 0 && first.backends.length === 0)) throw bad(`VipTable ${first.vip} generation ${generation}: size ${first.size} is not allowed`);
  const backends = first.size === 0 ? [] : canonicalBackends(first.backends);
  const hasAlternates = list.some((s) => s.alternates !== undefined);
  const slots = scratch ? scratchArray(0, first.size) : new Uint32Array(first.size);
  const alternates = !hasAlternates ? undefined : scratch ? scratchArray(1, first.size) : new Uint32Array(first.size);
  const hasHops = list.some((s) => s.secondHops !== undefined);
  const secondHops = !hasHops ? undefined : scratch ? scratchArray(2, first.size) : new Uint32Array(first.size);
  let covered = 0;
  for (let index = 0; index < count; index++) {
    const s = complete.get(index)!;
    const width = s.slots.encoding === 'u8' ? 1 : 2;
    const none = width === 1 ? 0xff : 0xffff;
    const unpack = (deflated: string, what: string, into: Uint32Array, allowNone: boolean): void => {
      const n = s.shard.end - s.shard.start;
      let raw: Buffer;
      try {
        // One output chunk of the expected size: no chunk loop, no concatenation.
        raw = inflateRawSync(Buffer.from(deflated, 'base64'), { chunkSize: Math.max(64, n * width + 1) });
      } catch {
        throw bad(`VipTable ${s.vip} shard ${index}: ${what} are not deflate data`);
      }
      if (raw.length !== n * width || s.shard.start !== covered) {
        throw bad(`VipTable ${s.vip} shard ${index}: ${what} cover [${s.shard.start}, ${s.shard.end}) with ${raw.length / width} slots, expected to start at ${covered}`);
      }
      const start = s.shard.start;
      const owners = backends.length;
      const target = into.subarray(start, start + n);
      if (width === 1) target.set(raw); // widened to u32 in one native copy
      else for (let i = 0; i < n; i++) target[i] = raw[2 * i]! | (raw[2 * i + 1]! << 8);
      let worst = 0;
      if (allowNone) {
        for (let i = 0; i < n; i++) {
          const v = target[i]!;
          if (v === none) target[i] = NO_ALTERNATE;
          else if (v > worst) worst = v;
        }
      } else if (verify) {
        for (let i = 0; i < n; i++) if (target[i]! > worst) worst = target[i]!;
      }
      // Unverified: shards this function verified before (the same immutable strings), bounds included.
      if (n > 0 && worst >= owners) throw bad(`VipTable ${s.vip} shard ${index}: ${what} name backend ${worst} of ${owners}`);
    };
    unpack(s.slots.deflated, 'slots', slots, false);
    if (alternates !== undefined) {
      if (s.alternates === undefined) throw bad(`VipTable ${s.vip} shard ${index}: no alternates, while other shards of generation ${generation} have them`);
      unpack(s.alternates.deflated, 'alternates', alternates, true);
    }
    if (secondHops !== undefined) {
      if (s.secondHops === undefined) throw bad(`VipTable ${s.vip} shard ${index}: no second hops, while other shards of generation ${generation} have them`);
      unpack(s.secondHops.deflated, 'second hops', secondHops, true);
    }
    covered = s.shard.end;
  }
  if (covered !== first.size) throw bad(`VipTable ${first.vip} generation ${generation}: shards cover ${covered} of ${first.size} slots`);
  const table: Table = { size: first.size, backends, slots, ...(alternates === undefined ? {} : { alternates }), ...(secondHops === undefined ? {} : { secondHops }) };
  const digest = verify ? tableDigest(table) : first.digest;
  if (digest !== first.digest) throw bad(`VipTable ${first.vip} generation ${generation}: assembled digest ${digest} is not the published ${first.digest}`);
  // Arrays of its own: its digest is known from here on (scratch arrays change under the table).
  if (verify && !scratch) knownDigest(table, digest);
  return { table, generation, digest };
}

/**
 * The newest generation whose shards are all present and agree (size,
 * backends and digest as published; nothing decoded), or null while none is.
 */
export function newestWhole(shards: readonly TableShardSpec[]): { generation: number; size: number; digest: string; backends: readonly BackendWeight[]; shards: TableShardSpec[] } | null {
  const byGeneration = new Map<number, TableShardSpec[]>();
  for (const s of shards) {
    const list = byGeneration.get(s.generation) ?? [];
    list.push(s);
    byGeneration.set(s.generation, list);
  }
  for (const generation of [...byGeneration.keys()].sort((a, b) => b - a)) {
    const list = byGeneration.get(generation)!;
    const first = list[0]!;
    const count = first.shard.count;
    const complete = new Map(list.filter((s) => s.digest === first.digest && s.shard.count === count).map((s) => [s.shard.index, s]));
    if (complete.size !== count) continue;
    return { generation, size: first.size, digest: first.digest, backends: first.backends, shards: [...complete.values()] };
  }
  return null;
}
