// digest.ts: the table digest, a SHA-256 over a canonical encoding of
// (format version, size, backend list, slots). Two nodes that print the same
// digest program the same table, byte for byte.
//
// Encoding (all integers u32 little-endian):
//   "xdplb-table\0" | TABLE_FORMAT_VERSION | M | N |
//   N x (key length in bytes | key UTF-8 | weight) | M x slot owner index |
//   M x slot alternate index (0xffffffff: none; all none when the table has
//   no alternates) | only when some slot has a second hop (second-hops.ts):
//   "second-hops\0" | M x slot second-hop index (0xffffffff: none). A table
//   without second hops keeps the digest it had before they existed.

import { createHash } from 'node:crypto';
import type { Table } from './maglev.js';

/**
 * Version of everything that decides which backend a flow gets: the flow hash
 * (seed and word layout), the Maglev hashes and seeds, the rounding. A table of
 * another version must be recomputed, never reused.
 */
export const TABLE_FORMAT_VERSION = 2;

const MAGIC = Buffer.from('xdplb-table\0', 'latin1');
const HOPS_MAGIC = Buffer.from('second-hops\0', 'latin1');

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

export function tableDigest(table: Table): string {
  const h = createHash('sha256');
  h.update(MAGIC);
  h.update(u32(TABLE_FORMAT_VERSION));
  h.update(u32(table.size));
  h.update(u32(table.backends.length));
  for (const b of table.backends) {
    const key = Buffer.from(b.key, 'utf8');
    h.update(u32(key.length));
    h.update(key);
    h.update(u32(b.weight));
  }
  updateU32Array(h, table.slots);
  updateU32Array(h, table.alternates ?? new Uint32Array(table.size).fill(0xffffffff));
  if (table.secondHops !== undefined && table.secondHops.some((x) => x !== 0xffffffff)) {
    h.update(HOPS_MAGIC);
    updateU32Array(h, table.secondHops);
  }
  return `sha256:${h.digest('hex')}`;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function updateU32Array(h: ReturnType<typeof createHash>, a: Uint32Array): void {
  if (LITTLE_ENDIAN) {
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  } else {
    const le = Buffer.allocUnsafe(a.length * 4);
    for (let s = 0; s < a.length; s++) le.writeUInt32LE(a[s]!, s * 4);
    h.update(le);
  }
}

/**
 * The digest of a table as the kernel holds it: `slots` are datapath backend
 * indices read back from the maps, `addressOf` names each index's backend as
 * read back, and `listed` is the backend list (order and weights) the table
 * was published with, which the kernel does not hold. Equal to the published
 * digest exactly when every slot reaches the backend the published table
 * says; a slot naming a backend that is not listed, or a size that differs,
 * gives another digest. Size 0 (no table) is the empty table's digest.
 */
export function programmedDigest(
  size: number,
  slots: Uint32Array | null,
  addressOf: (index: number) => string | undefined,
  listed: readonly { readonly key: string; readonly weight: number }[],
  /** Each slot's alternate backend index as read back (0xffffffff: none); null: the kernel holds none. */
  alternates: Uint32Array | null = null,
  /** Each slot's second-hop backend index as read back (0xffffffff: none); null: the kernel holds none. */
  secondHops: Uint32Array | null = null,
): string {
  if (size === 0 || slots === null) return tableDigest({ size: 0, backends: [], slots: new Uint32Array(0) });
  const backends = listed.map((b) => ({ key: b.key, weight: b.weight }));
  const position = new Map(backends.map((b, i) => [b.key, i]));
  const byIndex = new Map<number, number>();
  const positionOf = (index: number): number => {
    let p = byIndex.get(index);
    if (p === undefined) {
      const key = addressOf(index) ?? `unknown backend index ${index}`;
      p = position.get(key);
      if (p === undefined) {
        p = backends.length;
        backends.push({ key, weight: 0 });
        position.set(key, p);
      }
      byIndex.set(index, p);
    }
    return p;
  };
  const owners = Uint32Array.from(slots, positionOf);
  const alt = alternates === null ? undefined : Uint32Array.from(alternates, (i) => (i === 0xffffffff ? i : positionOf(i)));
  const hops = secondHops === null ? undefined : Uint32Array.from(secondHops, (i) => (i === 0xffffffff ? i : positionOf(i)));
  return tableDigest({ size: size as Table['size'], backends, slots: owners, ...(alt === undefined ? {} : { alternates: alt }), ...(hops === undefined ? {} : { secondHops: hops }) });
}

/**
 * Hex digits of a table digest that a node's report carries per programmed
 * VIP: 64 bits tell tables apart without accident, at a quarter of the size
 * (a report lists every VIP of the node, and fifty nodes rewrite theirs).
 */
export const SHORT_DIGEST_HEX = 16;

/** The short form of a table digest ("sha256:<hex>" -> its first SHORT_DIGEST_HEX hex digits). */
export function shortDigest(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 1 + SHORT_DIGEST_HEX);
}

/** Whether a digest a node reported, in full or short, names the table of `published`'s digest. */
export function reportsDigest(reported: string, published: string): boolean {
  return reported === published || (reported.length === SHORT_DIGEST_HEX && shortDigest(published) === reported);
}
