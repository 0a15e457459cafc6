// table-shards.test.ts: published tables split into shards small enough for
// the API server, reassemble byte for byte, and only whole generations count.
import { describe, expect, it } from 'vitest';
import { tableDigest } from '../../src/core/digest.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { buildTable, successorTable } from '../../src/core/maglev.js';
import { assembleShards, encodeTable, tableObjectName, SHARD_SLOTS, type TableShardSpec } from '../../src/core/table-shards.js';
import type { Table } from '../../src/core/maglev.js';
import { EMPTY_TABLE } from '../../src/core/vip-decision.js';

/** A table's shards as generation `generation` of VIP `vip`. */
const encodeShards = (vip: string, generation: number, table: Table): TableShardSpec[] => encodeTable(table).map((s) => ({ ...s, vip, generation }));

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

  it('the empty table (no backend) is one shard of size 0 that assembles to its own digest (issue 11 item 3)', () => {
    const shards = encodeShards('web', 7, EMPTY_TABLE);
    expect(shards).toHaveLength(1);
    expect(shards[0]!.shard).toEqual({ index: 0, count: 1, start: 0, end: 0 });
    const back = assembleShards(JSON.parse(JSON.stringify(shards)));
    expect(back).toMatchObject({ generation: 7, digest: tableDigest(EMPTY_TABLE) });
    expect(back!.table.size).toBe(0);
  });

  it('names a table after its digest, so a new one is written beside the published one and equal tables are one (issue 11 item 2)', () => {
    const t1 = buildTable({ size: 251, backends: backends(3) });
    const t2 = buildTable({ size: 251, backends: backends(4) });
    const d1 = tableDigest(t1);
    expect(tableObjectName(d1, 1)).toBe(`xdplb-${d1.slice('sha256:'.length, 'sha256:'.length + 16)}-1`);
    expect(tableObjectName(tableDigest(t2), 0)).not.toBe(tableObjectName(d1, 0));
    expect(tableObjectName(tableDigest(buildTable({ size: 251, backends: backends(3) })), 0)).toBe(tableObjectName(d1, 0));
  });
});
