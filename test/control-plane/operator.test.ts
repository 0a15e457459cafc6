// operator.test.ts: the operator against a real kube-apiserver and etcd:
// kubectl-applied VIPs and Backends become published tables and status,
// node reports drive Programmed, the newer of two VIPs claiming an address
// gets Conflict, deleting a VIP removes its tables (finalizer), a restarted
// operator publishes the successor of the last table, and of two replicas
// only the Lease holder writes, with a standby taking over.
import { vipTables } from '../../lab/tables.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableChange } from '../../src/core/maglev.js';
import type { Kube } from '../../src/kube/k8s.js';
import { Operator } from '../../src/operator/operator.js';
import type { ControlPlane } from '../../lab/control-plane.js';
import { backendYaml, publishedTable, startOperatorPlane, webVipYaml } from '../support/operator-plane.js';
import { until } from '../../lab/wait.js';

let cp: ControlPlane;
let kube: Kube;
const running: Operator[] = [];
const log = pino({ level: process.env.XDPLB_TEST_LOG ?? 'silent' });

function operator(identity: string, leaseSeconds = 3): Operator {
  const o = new Operator({ kube, namespace: 'xdplb-system', identity, leaderElect: true, leaseSeconds, renewMs: 500, resyncSeconds: 30, workers: 2, log: log.child({ identity }) });
  running.push(o);
  return o;
}

async function apply(yaml: string): Promise<void> {
  await cp.kubectl(['apply', '-f', '-'], { input: yaml });
}

async function getJson(args: string[]): Promise<Record<string, any>> {
  return JSON.parse((await cp.kubectl([...args, '-o', 'json'])).stdout) as Record<string, any>;
}

const published = (ns: string, vip: string) => publishedTable(cp, ns, vip);

const condition = (vip: Record<string, any>, type: string) => (vip.status?.conditions as { type: string; status: string; reason: string; message: string }[] | undefined)?.find((c) => c.type === type);

beforeAll(async () => {
  ({ cp, kube } = await startOperatorPlane());
}, 180_000);

afterAll(async () => {
  for (const o of running) await o.stop().catch(() => undefined);
  await cp?.stop();
});


describe('operator against a real API server', () => {
  it('publishes a table for a kubectl-applied VIP and reports it in status', async () => {
    operator('op-a').start();
    await apply(
      backendYaml('a', '10.0.0.1') +
        backendYaml('b', '10.0.0.2') +
        backendYaml('c', '10.0.0.3', 200) +
        webVipYaml('web', 4093),
    );
    const table = await until('the published table', () => published('shop', 'web'));
    expect(table.generation).toBe(1);
    expect(table.table.backends.map((b) => b.key)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    const vip = await until('status', async () => {
      const v = await getJson(['-n', 'shop', 'get', 'vip', 'web']);
      return v.status?.table?.digest === table.digest ? v : null;
    });
    expect(vip.status.observedGeneration).toBe(vip.metadata.generation);
    expect(vip.status.backendsSummary).toBe('3/3');
    expect(vip.metadata.finalizers).toContain('xdplb.io/cleanup');
    expect(condition(vip, 'Programmed')).toMatchObject({ status: 'False', reason: 'NoNodes' });
    expect(condition(vip, 'Ready')?.status).toBe('False');
  });

  it('becomes Ready when the nodes report the published digest', async () => {
    const table = (await published('shop', 'web'))!;
    for (const node of ['lb-1', 'lb-2']) {
      await apply(`apiVersion: xdplb.io/v1alpha1
kind: NodeReport
metadata: { name: ${node}, namespace: xdplb-system }
spec: { node: ${node} }
`);
      await cp.kubectl(['-n', 'xdplb-system', 'patch', 'nodereport', node, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { vips: [{ namespace: 'shop', name: 'web', generation: table.generation, digest: table.digest, programmed: true }], backends: [] } })]);
    }
    const vip = await until('Ready', async () => {
      const v = await getJson(['-n', 'shop', 'get', 'vip', 'web']);
      return condition(v, 'Ready')?.status === 'True' ? v : null;
    });
    expect(vip.status.nodesSummary).toBe('2/2');
    expect(condition(vip, 'Programmed')?.reason).toBe('AllNodesProgrammed');
  });

  it('moves only the minimum when a backend is removed', async () => {
    const before = (await published('shop', 'web'))!;
    await cp.kubectl(['-n', 'shop', 'delete', 'backend', 'b']);
    const after = await until('generation 2', async () => {
      const t = await published('shop', 'web');
      return t !== null && t.generation === 2 ? t : null;
    });
    const change = tableChange(before.table, after.table);
    expect(change.moved).toBe(change.minimum);
  });

  it('gives the newer of two VIPs on one address and port a Conflict, and programs none for it', async () => {
    await apply(webVipYaml('web-copy'));
    const vip = await until('Conflict', async () => {
      const v = await getJson(['-n', 'shop', 'get', 'vip', 'web-copy']);
      return condition(v, 'Conflict')?.status === 'True' ? v : null;
    });
    expect(condition(vip, 'Conflict')?.message).toMatch(/192\.0\.2\.10 TCP\/80 is already served by shop\/web/);
    expect(await published('shop', 'web-copy')).toBeNull();
    const events = await getJson(['-n', 'shop', 'get', 'events', '--field-selector', 'involvedObject.name=web-copy']);
    expect((events.items as { reason: string }[]).map((e) => e.reason)).toContain('AddressInUse');
  });

  it('a restarted operator publishes the successor of the last published table', async () => {
    for (const o of running.splice(0)) await o.stop();
    const before = (await published('shop', 'web'))!;
    const o = operator('op-b');
    await o.start();
    await apply(backendYaml('d', '10.0.0.4'));
    const after = await until('the next generation', async () => {
      const t = await published('shop', 'web');
      return t !== null && t.generation === before.generation + 1 ? t : null;
    });
    const change = tableChange(before.table, after.table);
    expect(change.moved).toBe(change.minimum);
  });

  it('of two replicas only the lease holder reconciles, and the standby takes over when it stops', async () => {
    const standby = operator('op-c');
    await standby.start();
    await new Promise((r) => setTimeout(r, 1500));
    expect(standby.leading).toBe(false);
    const leader = running.find((o) => o.leading)!;
    expect(leader).toBeDefined();
    const t0 = Date.now();
    await leader.stop();
    running.splice(running.indexOf(leader), 1);
    await until('the standby leads', async () => standby.leading, 15_000);
    console.log(`leader failover: the standby led ${Date.now() - t0} ms after the leader stopped (lease released on stop)`);
    const before = (await published('shop', 'web'))!;
    await cp.kubectl(['-n', 'shop', 'delete', 'backend', 'd']);
    await until('the standby publishes', async () => {
      const t = await published('shop', 'web');
      return t !== null && t.generation === before.generation + 1;
    });
  });

  it('takes backends from a Service\'s EndpointSlices: ready ones serve, terminating ones drain', async () => {
    await apply(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: api-1, namespace: shop, labels: { kubernetes.io/service-name: api } }
addressType: IPv4
ports: [{ port: 8080, protocol: TCP }]
endpoints:
  - { addresses: [10.1.0.1], conditions: { ready: true, serving: true, terminating: false } }
  - { addresses: [10.1.0.2], conditions: { ready: false, serving: true, terminating: true } }
  - { addresses: [10.1.0.3], conditions: { ready: false, serving: false, terminating: false } }
---
apiVersion: xdplb.io/v1alpha1
kind: LoadBalancerVip
metadata: { name: api, namespace: shop }
spec:
  address: 192.0.2.20
  ports: [{ port: 8080 }]
  hashing: { tableSize: 1021 }
  backends: { service: { name: api, weight: 50 } }
`);
    const table = await until('the api table', () => published('shop', 'api'));
    // Only slices of Services a VIP references are watched and cached.
    await apply(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: unrelated-1, namespace: shop, labels: { kubernetes.io/service-name: unrelated } }
addressType: IPv4
endpoints: [{ addresses: [10.9.9.9], conditions: { ready: true } }]
`);
    await new Promise((r) => setTimeout(r, 500));
    const cached = running.find((o) => o.leading)!.caches.endpointSlices.list().map((o) => o.metadata!.name);
    expect(cached).toEqual(['api-1']);
    expect(table.table.backends).toEqual([
      { key: '10.1.0.1', weight: 50 },
      { key: '10.1.0.2', weight: 0 },
    ]);
    const vip = await until('status', async () => {
      const v = await getJson(['-n', 'shop', 'get', 'vip', 'api']);
      return v.status?.backendsSummary === '1/2' ? v : null;
    });
    expect(vip.status.table.digest).toBe(table.digest);
    // The terminating endpoint goes away: only the ready one is left.
    await cp.kubectl(['-n', 'shop', 'patch', 'endpointslice', 'api-1', '--type=json', '-p', JSON.stringify([{ op: 'remove', path: '/endpoints/1' }])]);
    const next = await until('the next generation', async () => {
      const t = await published('shop', 'api');
      return t !== null && t.generation === table.generation + 1 ? t : null;
    });
    expect(next.table.backends.map((b) => b.key)).toEqual(['10.1.0.1']);
  });

  it('deleting a VIP removes its published table and then the VIP (finalizer)', async () => {
    await cp.kubectl(['-n', 'shop', 'delete', 'vip', 'web', '--wait=false']);
    await until('the VIP is gone', async () => {
      const r = await cp.kubectl(['-n', 'shop', 'get', 'vip', 'web'], { allowFailure: true });
      return r.exitCode !== 0;
    });
    // Gone: every table that listed it, unless another live VIP has that very table too.
    await until('no table is left for the deleted VIP alone', async () => {
      const { index } = await vipTables(cp, 'shop', 'web');
      const live = new Set(((await getJson(['-n', 'shop', 'get', 'vip'])).items as { metadata: { name: string } }[]).map((v) => v.metadata.name));
      return index.sharedTables().filter((t) => t.assigned.some((a) => a.name === 'web')).every((t) => t.assigned.some((a) => a.name !== 'web' && live.has(a.name))) && index.legacyShards('shop', 'web').length === 0;
    });
  });
});
