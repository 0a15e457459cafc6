// garbage-collection.test.ts: the ownerReferences the operator put on the
// VipTable shards of the earlier, per-VIP form (still found on clusters
// upgraded from it) really make Kubernetes clean them up: with kube-controller-
// manager's garbage collector running against a real kube-apiserver, deleting
// a LoadBalancerVip deletes its VipTables, and deleting a namespace deletes
// what is left in it (namespace controller).
// Needs the binaries of scripts/build-control-plane, kube-controller-manager included.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTable } from '../../src/core/maglev.js';
import { encodeTable } from '../../src/core/table-shards.js';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { sleep } from '../../lab/wait.js';

const CRD_DIR = fileURLToPath(new URL('../../crds', import.meta.url));
const API_VERSION = 'xdplb.io/v1alpha1';
const NS = 'shop';
const VIPS = `/apis/xdplb.io/v1alpha1/namespaces/${NS}/loadbalancervips`;
const TABLES = `/apis/xdplb.io/v1alpha1/namespaces/${NS}/viptables`;
const building = process.env.XDPLB_BUILD_CONTROL_PLANE === '1';

type Obj = Record<string, unknown>;
interface Meta {
  metadata: { name: string; uid: string; ownerReferences?: Obj[]; deletionTimestamp?: string };
}

let cp: ControlPlane | undefined;
const plane = (): ControlPlane => {
  if (cp === undefined) throw new Error('control plane not started');
  return cp;
};

beforeAll(async () => {
  cp = await startControlPlane({ crdDir: CRD_DIR, controllerManager: true });
  console.info(`control plane with kube-controller-manager ready in ${cp.startSeconds.toFixed(2)} s`);
}, building ? 90 * 60_000 : 180_000);

afterAll(async () => {
  await cp?.stop();
});

/** The request, which must answer `status`; its body parsed. */
async function call<T = Obj>(method: string, path: string, status: number, body?: unknown): Promise<T> {
  const r = await plane().request(method, path, body === undefined ? {} : { body });
  if (r.status !== status) throw new Error(`${method} ${path}: ${r.status} (want ${status}): ${r.body}`);
  return JSON.parse(r.body) as T;
}

/** Polls GET `path` until it answers 404; fails after `ms`, with the controller manager's log tail. */
async function waitGone(path: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    const r = await plane().request('GET', path);
    if (r.status === 404) return;
    last = `${r.status} ${r.body.slice(0, 300)}`;
    await sleep(200);
  }
  throw new Error(`${path} still there after ${ms} ms (last: ${last})\n` +
    `--- kube-controller-manager log tail:\n${await plane().logTail('controller-manager', 30)}`);
}

function vip(name: string): Obj {
  return {
    apiVersion: API_VERSION,
    kind: 'LoadBalancerVip',
    metadata: { name, namespace: NS },
    spec: {
      address: '192.0.2.10',
      ports: [{ port: 80 }],
      backends: { selector: { matchLabels: { app: 'web' } } },
      hashing: { tableSize: 251 },
    },
  };
}

/** The shards of a real 251-slot table of two backends, owned by the VIP as the operator owns them. */
function tables(owner: Meta, generation = 1): Obj[] {
  const table = buildTable({ size: 251, backends: [{ key: '10.0.0.11', weight: 1 }, { key: '10.0.0.12', weight: 1 }] });
  const ownerReferences = [{
    apiVersion: API_VERSION,
    kind: 'LoadBalancerVip',
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  }];
  return encodeTable(table).map((content) => ({ ...content, vip: owner.metadata.name, generation })).map((spec) => ({
    apiVersion: API_VERSION,
    kind: 'VipTable',
    metadata: { name: `${owner.metadata.name}-g${generation}-s${spec.shard.index}`, namespace: NS, ownerReferences },
    spec,
  }));
}

describe('garbage collection (kube-controller-manager)', () => {
  it('runs the controller manager as a child of the control plane', () => {
    const c = plane();
    expect(c.pids.controllerManager).toBeGreaterThan(0);
    expect(c.controllerManagerServer).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('deletes the VipTables of a deleted LoadBalancerVip', async () => {
    await call('POST', '/api/v1/namespaces', 201, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    const owner = await call<Meta>('POST', VIPS, 201, vip('web'));
    const created: Meta[] = [];
    for (const t of tables(owner)) created.push(await call<Meta>('POST', TABLES, 201, t));
    expect(created).toHaveLength(1);
    expect(created[0]!.metadata.ownerReferences).toEqual([expect.objectContaining({ uid: owner.metadata.uid, controller: true })]);

    // An unowned table, and one owned by another VIP, must survive.
    const other = await call<Meta>('POST', VIPS, 201, vip('api'));
    const [otherTable] = tables(other);
    await call('POST', TABLES, 201, otherTable);
    const loose = { ...tables(owner)[0]!, metadata: { name: 'loose', namespace: NS } };
    await call('POST', TABLES, 201, loose);

    // Background propagation (the default for custom resources): the VIP, which has
    // no finalizer, goes at once; the collector follows with its dependents.
    await call('DELETE', `${VIPS}/web`, 200);
    await waitGone(`${VIPS}/web`);
    for (const t of created) await waitGone(`${TABLES}/${t.metadata.name}`);

    const left = await call<{ items: Meta[] }>('GET', TABLES, 200);
    expect(left.items.map((i) => i.metadata.name).sort()).toEqual(['api-g1-s0', 'loose']);
  });

  it('empties and removes a deleted namespace', async () => {
    const before = await call<{ items: Meta[] }>('GET', VIPS, 200);
    expect(before.items.map((i) => i.metadata.name)).toEqual(['api']);

    const ns = await call<{ status?: { phase?: string } }>('DELETE', `/api/v1/namespaces/${NS}`, 200);
    expect(ns.status?.phase).toBe('Terminating');
    await waitGone(`/api/v1/namespaces/${NS}`, 60_000);
    // Namespaced lists of a namespace that no longer exists are empty, not 404.
    expect((await call<{ items: Meta[] }>('GET', VIPS, 200)).items).toEqual([]);
    expect((await call<{ items: Meta[] }>('GET', TABLES, 200)).items).toEqual([]);
    const all = await call<{ items: Meta[] }>('GET', '/apis/xdplb.io/v1alpha1/viptables', 200);
    expect(all.items).toEqual([]);
  });
});
