// table-codec.ts: a table as a self-checking document, the form in which
// tables are saved (`xdplb ring --out`) and published to agents. Slots are
// stored as the narrowest little-endian unsigned integers that fit the backend
// count, raw-deflated and base64-encoded; the digest is recomputed on decode,
// so a corrupt or hand-edited document is refused instead of programmed.

import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { z } from 'zod';
import { canonicalBackends } from './backends.js';
import { tableDigest, TABLE_FORMAT_VERSION } from './digest.js';
import { ErrorCodes, XdplbError } from './errors.js';
import type { Table } from './maglev.js';
import { isTableSize, TABLE_SIZES } from './table-sizes.js';

export const TABLE_KIND = 'XdplbTable';

// MAX_BACKENDS (65536) indices always fit in 16 bits.
const encodings = ['u8', 'u16'] as const;
type SlotEncoding = (typeof encodings)[number];

export const tableDocumentSchema = z.object({
  kind: z.literal(TABLE_KIND),
  formatVersion: z.literal(TABLE_FORMAT_VERSION),
  size: z.number().int().refine(isTableSize, { message: `size must be one of ${TABLE_SIZES.join(', ')}` }),
  backends: z.array(z.object({ key: z.string().min(1), weight: z.number().int().min(0) })).min(1),
  slots: z.object({ encoding: z.enum(encodings), deflated: z.string() }),
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});

export type TableDocument = z.infer<typeof tableDocumentSchema>;

function encodingFor(backendCount: number): SlotEncoding {
  return backendCount <= 0x100 ? 'u8' : 'u16';
}

const WIDTH: Record<SlotEncoding, number> = { u8: 1, u16: 2 };

export function encodeTable(table: Table): TableDocument {
  if (table.size === 0) throw bad('the empty table (no backend) has no table document');
  const encoding = encodingFor(table.backends.length);
  const width = WIDTH[encoding];
  const raw = Buffer.alloc(table.size * width);
  for (let s = 0; s < table.size; s++) raw.writeUIntLE(table.slots[s]!, s * width, width);
  return {
    kind: TABLE_KIND,
    formatVersion: TABLE_FORMAT_VERSION,
    size: table.size,
    backends: table.backends.map((b) => ({ key: b.key, weight: b.weight })),
    slots: { encoding, deflated: deflateRawSync(raw, { level: 9 }).toString('base64') },
    digest: tableDigest(table),
  };
}

function bad(message: string, cause?: unknown): XdplbError {
  return new XdplbError(ErrorCodes.BAD_TABLE_FILE, message, cause === undefined ? {} : { cause });
}

/** Decodes and verifies a table document. Throws BAD_TABLE_FILE on any inconsistency. */
export function decodeTable(input: unknown): Table {
  const parsed = tableDocumentSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw bad(`not a table document: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const doc = parsed.data;
  let backends;
  try {
    backends = canonicalBackends(doc.backends);
  } catch (e) {
    throw bad(`table document has an invalid backend list: ${(e as Error).message}`, e);
  }
  if (backends.some((b, i) => b.key !== doc.backends[i]!.key)) throw bad('table document backends are not sorted by key');
  let raw: Buffer;
  try {
    raw = inflateRawSync(Buffer.from(doc.slots.deflated, 'base64'));
  } catch (e) {
    throw bad('table document slots are not valid deflate data', e);
  }
  const width = WIDTH[doc.slots.encoding];
  if (raw.length !== doc.size * width) {
    throw bad(`table document holds ${raw.length / width} slots, its size says ${doc.size}`);
  }
  const slots = new Uint32Array(doc.size);
  for (let s = 0; s < doc.size; s++) {
    const i = raw.readUIntLE(s * width, width);
    if (i >= backends.length) throw bad(`slot ${s} names backend ${i}, but there are ${backends.length}`);
    slots[s] = i;
  }
  const table: Table = { size: doc.size as Table['size'], backends, slots };
  const digest = tableDigest(table);
  if (digest !== doc.digest) throw bad(`table document digest ${doc.digest} does not match its content (${digest})`);
  return table;
}
