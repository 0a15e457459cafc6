// table-codec.test.ts: tables survive encode/decode byte for byte, and a
// damaged document is refused with BAD_TABLE_FILE instead of being programmed.
import { describe, expect, it } from 'vitest';
import { tableDigest } from '../../src/core/digest.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { buildTable } from '../../src/core/maglev.js';
import { decodeTable, encodeTable } from '../../src/core/table-codec.js';

const bad = expect.objectContaining({ code: ErrorCodes.BAD_TABLE_FILE });

describe('table document', () => {
  it.each([
    [3, 251],
    [300, 65537],
    [5000, 1048573],
  ])('round-trips %i backends at size %i', (n, size) => {
    const backends = Array.from({ length: n }, (_, i) => ({ key: `be-${i}`, weight: 1 + (i % 3) }));
    const table = buildTable({ size, backends });
    const doc = JSON.parse(JSON.stringify(encodeTable(table)));
    const back = decodeTable(doc);
    expect(tableDigest(back)).toBe(tableDigest(table));
    expect(Buffer.from(back.slots.buffer).equals(Buffer.from(table.slots.buffer))).toBe(true);
  });

  it('uses the narrowest slot encoding', () => {
    const one = (n: number) => encodeTable(buildTable({ size: 251, backends: Array.from({ length: n }, (_, i) => ({ key: `k${i}`, weight: 1 })) }));
    expect(one(256).slots.encoding).toBe('u8');
    expect(one(257).slots.encoding).toBe('u16');
  });

  it('refuses a document whose digest does not match its content', () => {
    const doc = encodeTable(buildTable({ size: 251, backends: [{ key: 'a', weight: 1 }, { key: 'b', weight: 1 }] }));
    expect(() => decodeTable({ ...doc, backends: [{ key: 'a', weight: 1 }, { key: 'b', weight: 2 }] })).toThrowError(bad);
    expect(() => decodeTable({ ...doc, digest: `sha256:${'0'.repeat(64)}` })).toThrowError(bad);
  });

  it('refuses malformed documents', () => {
    const doc = encodeTable(buildTable({ size: 251, backends: [{ key: 'a', weight: 1 }, { key: 'b', weight: 1 }] }));
    for (const broken of [
      null,
      'text',
      { ...doc, kind: 'Other' },
      { ...doc, formatVersion: 99 },
      { ...doc, size: 250 },
      { ...doc, backends: [] },
      { ...doc, backends: [{ key: 'b', weight: 1 }, { key: 'a', weight: 1 }] },
      { ...doc, slots: { encoding: 'u8', deflated: 'not deflate data' } },
      { ...doc, slots: { ...doc.slots, encoding: 'u16' } },
      { ...doc, size: 509 },
    ]) {
      expect(() => decodeTable(broken)).toThrowError(bad);
    }
  });
});
