// table-index.test.ts: which tables each VIP is published with, from the
// VipTable objects an informer holds: shared tables listing VIPs at their
// generations (uid-checked), the earlier per-VIP form, wholeness, and which
// VIPs a change of an object concerns (an update of a list, only the VIPs
// whose entry changed: a thousand VIPs listed are not all queued again).
import { describe, expect, it } from 'vitest';
import { assignedEntry, sharedTableObjects, TableIndex, type TableObject } from '../../src/api/index.js';
import { buildTable } from '../../src/core/maglev.js';
import { encodeTable } from '../../src/core/table-shards.js';
import { tableDigest } from '../../src/core/digest.js';

const backends = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i + 1}`, weight: 1 }));
const entry = (name: string, generation: number) => assignedEntry(name, generation, `uid-${name}`);
const objects = (size: number, n: number, assigned: string[]): TableObject[] =>
  sharedTableObjects('shop', buildTable({ size, backends: backends(n) }), assigned).map((o, i) => ({ ...o, metadata: { ...o.metadata, resourceVersion: `v${i}` } }));

describe('table index', () => {
  it('gives each VIP its tables newest first, whole or not, and only its own uid\'s', () => {
    const big = objects(524287, 3, [entry('a', 2), entry('b', 1)]);
    const small = objects(251, 2, [entry('a', 1)]);
    const index = TableIndex.of([...small, big[0]!]);
    expect(index.candidates('shop', 'a', 'uid-a').map((c) => [c.generation, c.whole])).toEqual([[2, false], [1, true]]);
    index.note(big[1]!, false);
    expect(index.candidates('shop', 'a', 'uid-a')[0]).toMatchObject({ generation: 2, whole: true, legacy: false });
    expect(index.candidates('shop', 'a', 'uid-other')).toEqual([]);
    expect(index.highestGeneration('shop', 'a')).toBe(2);
    expect(index.sharedTables()).toHaveLength(2);
  });

  it('a list written again concerns only the VIPs whose entry changed; a shard arriving, every VIP listed', () => {
    const [head, second] = objects(524287, 3, [entry('a', 1), entry('b', 1), entry('c', 1)]);
    const index = new TableIndex();
    expect(index.note(head!, false).sort()).toEqual(['shop/a', 'shop/b', 'shop/c']);
    expect(index.note(second!, false).sort()).toEqual(['shop/a', 'shop/b', 'shop/c']);
    const spec = head!.spec as { assigned: string[] };
    const moved = { ...head!, metadata: { ...head!.metadata, resourceVersion: 'v9' }, spec: { ...spec, assigned: [entry('a', 1), entry('c', 2), entry('d', 1)] } };
    expect(index.note(moved, false).sort()).toEqual(['shop/b', 'shop/c', 'shop/d']);
    expect(index.candidates('shop', 'c', 'uid-c')[0]!.generation).toBe(2);
    expect(index.candidates('shop', 'b', 'uid-b')).toEqual([]);
    expect(index.note(moved, true).sort()).toEqual(['shop/a', 'shop/c', 'shop/d']);
  });

  it('reads the earlier per-VIP form beside shared tables', () => {
    const t = buildTable({ size: 251, backends: backends(2) });
    const legacy: TableObject[] = encodeTable(t).map((s, i) => ({ metadata: { namespace: 'shop', name: `web-g4-${i}`, resourceVersion: '1' }, spec: { ...s, vip: 'web', generation: 4 } }));
    const index = TableIndex.of([...legacy, ...objects(251, 3, [entry('web', 5)])]);
    const got = index.candidates('shop', 'web', 'uid-web');
    expect(got.map((c) => [c.generation, c.legacy, c.whole])).toEqual([[5, false, true], [4, true, true]]);
    expect(got[1]!.digest).toBe(tableDigest(t));
    expect(index.legacyShards('shop', 'web')).toEqual([{ name: 'web-g4-0', generation: 4 }]);
  });
});
