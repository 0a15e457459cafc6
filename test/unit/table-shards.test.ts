// table-shards.test.ts: published tables split into shards small enough for
// the API server, reassemble byte for byte, and only whole generations count.
import { describe, expect, it } from 'vitest';
import { tableDigest } from '../../src/core/digest.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { buildTable, successorTable } from '../../src/core/maglev.js';
import { assembleShards, encodeShards, SHARD_SLOTS } from '../../src/core/table-shards.js';

const backends = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `10.1.${i >> 8}.${i & 255}`, weight: 1 + (i % 3) }));

describe('table shards', () => {
  it('the largest table with 1000 backends stays well within the 1.5 MiB object limit per shard', () => {
    const table = buildTable({ size: 1048573, backends: backends(1000) });
    const shards = encodeShards('web', 1, table);
    expect(shards).toHaveLength(Math.ceil(1048573 / SHARD_SLOTS));
    for (const s of shards) expect(JSON.stringify(s).length).toBeLessThan(1024 * 1024);
    const back = assembleShards(JSON.parse(JSON.stringify(shards)));
    expect(back!.digest).toBe(tableDigest(table));
    expect(Buffer.from(back!.table.slots.buffer).equals(Buffer.from(table.slots.buffer))).toBe(true);
  });

  it('uses the newest complete generation, and none while a generation is half published', () => {
    const t1 = buildTable({ size: 524287, backends: backends(10) });
    const t2 = successorTable(t1, { size: 524287, backends: backends(11) });
    const g1 = encodeShards('web', 1, t1);
    const g2 = encodeShards('web', 2, t2);
    expect(assembleShards([...g1, g2[0]!])!.generation).toBe(1);
    expect(assembleShards([...g1, ...g2])!.generation).toBe(2);
    expect(assembleShards([g2[0]!])).toBeNull();
  });

  it('refuses a complete generation whose content does not match its digest', () => {
    const shards = encodeShards('web', 1, buildTable({ size: 251, backends: backends(3) }));
    const tampered = [{ ...shards[0]!, backends: [...shards[0]!.backends.slice(0, 2), { key: shards[0]!.backends[2]!.key, weight: 9 }] }];
    expect(() => assembleShards(tampered)).toThrowError(expect.objectContaining({ code: ErrorCodes.BAD_TABLE_FILE }));
  });
});
