// kubernetes-source.test.ts: what an agent in Kubernetes mode programs from
// the informers' objects: of two VIPs claiming one (address, protocol, port),
// only the older, whatever their status says; the last whole generation of a
// table while a newer one is half written; the empty table as no table;
// shared tables listing many VIPs, and tables of the earlier per-VIP form.
import { describe, expect, it } from 'vitest';
import { kubeVips, KubernetesSource, type PublishedCache } from '../../src/agent/kubernetes-source.js';
import { tableDigest } from '../../src/core/digest.js';
import { buildTable, successorTable } from '../../src/core/maglev.js';
import { assignedEntry, sharedTableObjects } from '../../src/api/index.js';
import type { Table } from '../../src/core/maglev.js';
import { encodeTable } from '../../src/core/table-shards.js';
import { EMPTY_TABLE } from '../../src/core/vip-decision.js';
import type { Obj } from '../../src/kube/k8s.js';

function vip(name: string, created: string, address = '192.0.2.10', extra: Record<string, unknown> = {}): Obj {
  return {
    apiVersion: 'xdplb.io/v1alpha1',
    kind: 'LoadBalancerVip',
    metadata: { namespace: 'shop', name, uid: `uid-${name}`, creationTimestamp: new Date(created), ...extra },
    spec: { address, mode: 'l2dsr', ports: [{ protocol: 'TCP', port: 80 }], hashing: { tableSize: 251 } },
    // The status an agent must not rely on: the operator has not judged the duplicate yet.
    status: { conditions: [{ type: 'Conflict', status: 'False' }] },
  } as Obj;
}

/** A shared table's objects as the operator writes them, listing each VIP (uid `uid-<name>`) at its generation. */
function tableObjects(table: Table, vips: readonly (readonly [string, number])[], version = '1'): Obj[] {
  return sharedTableObjects('shop', table, vips.map(([n, g]) => assignedEntry(n, g, `uid-${n}`))).map(
    (o, i) => ({ ...o, metadata: { ...o.metadata, resourceVersion: `${version}-${i}` } }) as unknown as Obj,
  );
}

/** A table published for one VIP at one generation. */
function shards(name: string, generation: number, table: Table, version = '1'): Obj[] {
  return tableObjects(table, [[name, generation]], version);
}

/** A table in the earlier form: shards of one VIP and generation, named after them. */
function legacyShards(name: string, generation: number, table: Table): Obj[] {
  return encodeTable(table).map((spec, i) => ({
    apiVersion: 'xdplb.io/v1alpha1',
    kind: 'VipTable',
    metadata: { namespace: 'shop', name: `${name}-g${generation}-${i}`, resourceVersion: `${generation}-${i}` },
    spec: { ...spec, vip: name, generation } as unknown as Record<string, unknown>,
  }));
}

const backends = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i + 1}`, weight: 1 }));

describe('Kubernetes source', () => {
  it('programs only the older of two VIPs claiming one key, whatever the status says (issue 11 item 1)', () => {
    const old = vip('web', '2026-01-01T00:00:00Z');
    const dup = vip('web-dup', '2026-02-01T00:00:00Z');
    const t = buildTable({ size: 251, backends: backends(2) });
    const got = kubeVips([dup, old], [...shards('web', 1, t)], {});
    expect(got.map((v) => v.key)).toEqual(['shop/web']);
    // The same address written another way is the same key.
    const v6old = vip('six', '2026-01-01T00:00:00Z', '2001:db8::1');
    const v6dup = vip('six-dup', '2026-02-01T00:00:00Z', '2001:0db8:0::1');
    expect(kubeVips([v6dup, v6old], [], {}).map((v) => v.key)).toEqual(['shop/six']);
    // Once the older one is being deleted, the newer one takes the key.
    const deleting = vip('web', '2026-01-01T00:00:00Z', '192.0.2.10', { deletionTimestamp: new Date('2026-03-01T00:00:00Z') });
    expect(kubeVips([dup, deleting], [], {}).map((v) => v.key)).toEqual(['shop/web-dup']);
  });

  it('keeps the last whole generation while a newer one is half written or gone (issue 11 item 2)', () => {
    const t1 = buildTable({ size: 524287, backends: backends(4) });
    const t2 = successorTable(t1, { size: 524287, backends: backends(5) });
    const g1 = shards('web', 1, t1);
    const g2 = shards('web', 2, t2);
    const cache: PublishedCache = new Map();
    const v = vip('web', '2026-01-01T00:00:00Z');
    expect(kubeVips([v], g1, {}, cache)[0]!.published!.generation).toBe(1);
    // The new generation half written beside the old one: still generation 1.
    expect(kubeVips([v], [...g1, g2[0]!], {}, cache)[0]!.published!.generation).toBe(1);
    // Whole: generation 2.
    expect(kubeVips([v], [...g1, ...g2], {}, cache)[0]!.published!.digest).toBe(tableDigest(t2));
    // The old one removed, and the new one seen half (an informer between events): still the last whole one.
    expect(kubeVips([v], [g2[1]!], {}, cache)[0]!.published!.digest).toBe(tableDigest(t2));
    // A VIP deleted and created again (another uid) carries nothing over.
    const again = { ...v, metadata: { ...v.metadata, uid: 'uid-new' } } as Obj;
    expect(kubeVips([again], [g2[1]!], {}, cache)[0]!.published).toBeNull();
  });

  it('holds no slots of a published table: content decodes them again from the shards, equal to what was published', () => {
    const v = vip('web', '2026-01-01T00:00:00Z');
    const t = buildTable({ size: 4093, backends: backends(3) });
    const [k] = kubeVips([v], shards('web', 1, t), {});
    expect(k!.published).not.toHaveProperty('table');
    const content = k!.published!.content();
    expect(Array.from(content.slots)).toEqual(Array.from(t.slots));
    expect(k!.published!.counts.get('10.0.0.1')).toBe(t.slots.filter((o) => t.backends[o]!.key === '10.0.0.1').length);
  });

  it('checks a generation on its first decode for writing: one whose slots miss its digest is set aside, the VIP keeps the last that matched', () => {
    const v = vip('web', '2026-01-01T00:00:00Z');
    const cache: PublishedCache = new Map();
    let asked = 0;
    const onBad = () => asked++;
    const t1 = buildTable({ size: 251, backends: backends(3) });
    const g1 = shards('web', 1, t1);
    kubeVips([v], g1, {}, cache, onBad)[0]!.published!.content();
    // Generation 2 names a table whose slots are not the ones its shards carry (another table's, same size).
    const t2 = successorTable(t1, { size: 251, backends: backends(2) });
    const g2 = shards('web', 2, t2, '2').map((o) => ({ ...o, spec: { ...o.spec, slots: (shards('web', 2, buildTable({ size: 251, backends: backends(2).reverse() }))[0]!.spec as { slots: unknown }).slots } }) as Obj);
    const bad = kubeVips([v], [...g1, ...g2], {}, cache, onBad)[0]!;
    expect(bad.published!.generation).toBe(2); // whole: chosen, not yet decoded
    expect(() => bad.published!.content()).toThrow(/digest/);
    expect(asked).toBe(1);
    const back = kubeVips([v], [...g1, ...g2], {}, cache, onBad)[0]!;
    expect(back.published!.generation).toBe(1);
    expect(back.problem).toMatch(/digest/);
    // A later generation that matches clears the problem; generation 2 stays set aside.
    const g3 = shards('web', 3, t2, '3');
    const next = kubeVips([v], [...g2, ...g3], {}, cache, onBad)[0]!;
    expect(next.published!.generation).toBe(3);
    next.published!.content();
    expect(kubeVips([v], [...g2, ...g3], {}, cache, onBad)[0]!.problem).toBeNull();
  });

  it('programs the empty table as no table: the VIP stays, its packets are dropped (issue 11 item 3)', () => {
    const v = vip('web', '2026-01-01T00:00:00Z');
    const [k] = kubeVips([v], shards('web', 3, EMPTY_TABLE), {});
    expect(k!.published!.size).toBe(0);
    const { desired, status } = new KubernetesSource([k!]).compute({ mac: () => undefined, currentTable: () => undefined });
    expect(desired.vips).toHaveLength(1);
    expect(desired.vips[0]!.table).toBeNull();
    expect(status[0]!.digest).toBe(tableDigest(EMPTY_TABLE));
  });

  it('reports health as probed, unknown (null) when no probe runs, and no panic of its own (issue 11 item 9)', () => {
    const v = vip('web', '2026-01-01T00:00:00Z');
    (v.spec as Record<string, unknown>).healthCheck = { type: 'TCP' };
    const [k] = kubeVips([v], shards('web', 1, buildTable({ size: 251, backends: backends(2) })), {});
    // 10.0.0.1's probe failed; 10.0.0.2's has no result yet.
    const source = new KubernetesSource([k!], (probe) => (probe === 'tcp|10.0.0.1|80' ? false : null));
    const { status } = source.compute({ mac: () => ({ ok: true, mac: '02:00:00:00:00:01' }), currentTable: () => undefined });
    expect(status[0]!.panic).toBeNull();
    expect(status[0]!.backends.map((b) => [b.address, b.healthy])).toEqual([
      ['10.0.0.1', false],
      ['10.0.0.2', null],
    ]);
  });

  it('probes each backend once per distinct check, shared by the VIPs that use it (issue 13 item 3)', () => {
    const table = buildTable({ size: 251, backends: backends(10) });
    const vips = Array.from({ length: 100 }, (_, i) => {
      const o = vip(`v${i}`, '2026-01-01T00:00:00Z', `192.0.2.${i + 1}`);
      (o.spec as Record<string, unknown>).healthCheck = { type: 'TCP', intervalMilliseconds: i === 7 ? 50 : 100 };
      return o;
    });
    const tables = tableObjects(table, vips.map((o) => [o.metadata!.name!, 1] as const));
    const source = new KubernetesSource(kubeVips(vips, tables, {}));
    const targets = source.healthTargets();
    expect(targets).toHaveLength(10);
    // The strictest timing of the VIPs sharing a probe wins.
    expect(new Set(targets.map((t) => t.intervalMs))).toEqual(new Set([50]));
    expect(source.probeOf('shop/v3', '10.0.0.4')).toBe('tcp|10.0.0.4|80');
  });

  it("reads one shared table for every VIP it lists, each at its own generation, and a VIP's newer table over it", () => {
    const t1 = buildTable({ size: 4093, backends: backends(6) });
    const t2 = successorTable(t1, { size: 4093, backends: backends(7) });
    const vips = ['a', 'b', 'c'].map((n, i) => vip(n, '2026-01-01T00:00:00Z', `192.0.2.${i + 1}`));
    const tables = [...tableObjects(t1, [['a', 1], ['b', 4], ['c', 2]]), ...tableObjects(t2, [['c', 3]])];
    const got = new Map(kubeVips(vips, tables, {}).map((k) => [k.key, k.published]));
    expect(got.get('shop/a')).toMatchObject({ generation: 1, digest: tableDigest(t1) });
    expect(got.get('shop/b')).toMatchObject({ generation: 4, digest: tableDigest(t1) });
    expect(got.get('shop/c')).toMatchObject({ generation: 3, digest: tableDigest(t2) });
    // The agent writes a shared table once (one inner map): b's slot counts are known from a's decode.
    expect(got.get('shop/b')!.counts.size).toBe(0);
    expect(Array.from(got.get('shop/a')!.content().slots)).toEqual(Array.from(t1.slots));
    expect(got.get('shop/b')!.counts.get('10.0.0.1')).toBe(t1.slots.filter((o) => t1.backends[o]!.key === '10.0.0.1').length);
  });

  it('reads tables of the earlier per-VIP form, and a shared table of a higher generation over them (upgrade)', () => {
    const v = vip('web', '2026-01-01T00:00:00Z');
    const t1 = buildTable({ size: 4093, backends: backends(3) });
    const t2 = successorTable(t1, { size: 4093, backends: backends(2) });
    const cache: PublishedCache = new Map();
    expect(kubeVips([v], legacyShards('web', 5, t1), {}, cache)[0]!.published).toMatchObject({ generation: 5, digest: tableDigest(t1) });
    expect(kubeVips([v], [...legacyShards('web', 5, t1), ...shards('web', 6, t2)], {}, cache)[0]!.published).toMatchObject({ generation: 6, digest: tableDigest(t2) });
  });
});
