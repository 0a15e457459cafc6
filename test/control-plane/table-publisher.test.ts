// table-publisher.test.ts: the operator's table publisher against a real
// kube-apiserver and etcd when its informer's cache lags the server. The
// lag is the one fault here that cannot be caused on demand (the informer
// usually catches up within milliseconds), so the test hands the publisher
// an index built from a snapshot of the server's VipTables taken earlier, and
// says so. Everything else is real: the writes, the conditional deletes and
// the tables read back. A sweep must keep a table listed for a VIP since
// the cache was read; a publication over a table a sweep deleted must write
// it anew in the same round; and a table whose first shard the cache shows
// gone must get every shard back.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TableIndex, type TableObject } from '../../src/api/index.js';
import { buildTable, type Table } from '../../src/core/maglev.js';
import { digestOf } from '../../src/core/table-memo.js';
import { tableObjectName } from '../../src/core/table-shards.js';
import type { Kube } from '../../src/kube/k8s.js';
import { TablePublisher } from '../../src/operator/table-publisher.js';
import type { ControlPlane } from '../../lab/control-plane.js';
import { until } from '../../lab/wait.js';
import { startOperatorPlane } from '../support/operator-plane.js';

let cp: ControlPlane;
let kube: Kube;
let publisher: TablePublisher;
/** What the publisher reads as its informer's cache: a snapshot the test chooses (see the first comment). */
let cache: TableIndex;
let retried = 0;
const UID = 'uid-web';
const log = pino({ level: process.env.XDPLB_TEST_LOG ?? 'silent' });

const table = (size: number, weight: number): Table =>
  buildTable({ size, backends: [{ key: '10.0.0.1', weight }, { key: '10.0.0.2', weight: 100 }] });

async function serverTables(): Promise<TableObject[]> {
  return (JSON.parse((await cp.kubectl(['-n', 'shop', 'get', 'viptables', '-o', 'json'])).stdout) as { items: TableObject[] }).items;
}

/** The index of what the server holds now. */
async function snapshot(): Promise<TableIndex> {
  return TableIndex.of(await serverTables());
}

/** Publishes generation `generation` of VIP shop/web with `t` and waits until the server's table lists it, whole. */
async function publish(generation: number, t: Table): Promise<void> {
  publisher.publish('shop', 'web', UID, generation, t);
  await until(`generation ${generation} listed`, async () => {
    const c = (await snapshot()).candidates('shop', 'web', UID).find((x) => x.generation === generation);
    return c?.whole === true && c.digest === digestOf(t) ? c : null;
  }, 10_000);
}

beforeAll(async () => {
  ({ cp, kube } = await startOperatorPlane());
  cache = await snapshot();
  publisher = new TablePublisher({
    kube,
    index: () => cache,
    liveVip: (namespace, name) => (namespace === 'shop' && name === 'web' ? UID : undefined),
    log,
    retried: () => retried++,
  });
}, 120_000);

afterAll(async () => {
  publisher?.stop();
  await cp?.stop();
});

describe('table publisher over a cache that lags the API server', () => {
  const a = table(251, 150);
  const b = table(251, 100);
  const heads = async () => new Set((await serverTables()).map((o) => o.metadata!.name!));

  it('a sweep keeps a table listed for a VIP after the cache was read, and deletes it once it is unused', async () => {
    await publish(1, a);
    cache = await snapshot();
    await publish(2, b);
    // The cache shows generation 2 on b: a lists only generation 1, unused.
    cache = await snapshot();
    await publish(3, a);
    // The sweep judges a by the cache (a unused), but the server's a lists generation 3 now.
    expect(await publisher.sweep()).toBe(0);
    expect(await heads()).toContain(tableObjectName(digestOf(a), 0));
    // Once the cache shows it: b is the unused one.
    cache = await snapshot();
    expect(await publisher.sweep()).toBe(1);
    const left = await heads();
    expect(left).toContain(tableObjectName(digestOf(a), 0));
    expect(left).not.toContain(tableObjectName(digestOf(b), 0));
    expect(retried).toBe(0);
  });

  it('a publication over a table the cache still shows after a sweep deleted it writes the table anew in the same round', async () => {
    cache = await snapshot();
    await publish(4, b);
    const stale = await snapshot();
    cache = stale;
    expect(await publisher.sweep()).toBe(1); // a: generation 3 only, b whole at 4
    expect(await heads()).not.toContain(tableObjectName(digestOf(a), 0));
    // The cache still holds a (the informer has not shown its deletion).
    expect(cache.shared('shop', digestOf(a))?.head).toBeDefined();
    await publish(5, a);
    expect(retried).toBe(0);
  });

  it('a table whose first shard the cache shows gone, but not its others, gets every shard back', async () => {
    const big = table(524287, 150); // two shards
    const names = [0, 1].map((i) => tableObjectName(digestOf(big), i));
    await publish(6, big);
    cache = await snapshot();
    await publish(7, a);
    cache = await snapshot();
    // The cache saw the first shard's deletion and not yet the second's.
    const halfSeen = TableIndex.of((await serverTables()).filter((o) => o.metadata!.name !== names[0]));
    expect(await publisher.sweep()).toBe(2); // big (unused) and b
    expect(await heads()).not.toContain(names[1]);
    cache = halfSeen;
    await publish(8, big);
    const present = await heads();
    expect(names.every((n) => present.has(n))).toBe(true);
    expect(retried).toBe(0);
  });
});
