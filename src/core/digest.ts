// digest.ts: the table digest, a SHA-256 over a canonical encoding of
// (format version, size, backend list, slots). Two nodes that print the same
// digest program the same table, byte for byte.
//
// Encoding (all integers u32 little-endian):
//   "xdplb-table\0" | TABLE_FORMAT_VERSION | M | N |
//   N x (key length in bytes | key UTF-8 | weight) | M x slot owner index

import { createHash } from 'node:crypto';
import type { Table } from './maglev.js';

/**
 * Version of everything that decides which backend a flow gets: the flow hash
 * (seed and word layout), the Maglev hashes and seeds, the rounding. A table of
 * another version must be recomputed, never reused.
 */
export const TABLE_FORMAT_VERSION = 1;

const MAGIC = Buffer.from('xdplb-table\0', 'latin1');

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
  const slots = table.slots;
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) {
    h.update(new Uint8Array(slots.buffer, slots.byteOffset, slots.byteLength));
  } else {
    const le = Buffer.allocUnsafe(slots.length * 4);
    for (let s = 0; s < slots.length; s++) le.writeUInt32LE(slots[s]!, s * 4);
    h.update(le);
  }
  return `sha256:${h.digest('hex')}`;
}
