// service-addresses.test.ts: Services of type LoadBalancer get their address
// from VipPools (issue 16), against a real kube-apiserver (dual-stack service
// ranges) with the operator running: kubectl-applied Services of the class
// show the address in status with ipMode VIP and a condition, others are left
// alone; a requested address, a shared address, a dual-stack Service,
// exhaustion (pending, with the reason in an Event), release on deletion and
// class-less serving; pools report their usage and refuse overlaps. Each
// address becomes a LoadBalancerVip whose published table holds the nodes
// (InternalIP) running the decap role, weighted by their ready endpoints
// (EndpointSlices written here as the endpoint controller would; Nodes and
// decap NodeReports as kubelets and agents would).
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kube, loadKubeConfig } from '../../src/kube/k8s.js';
import { Operator } from '../../src/operator/operator.js';
import { ADDRESS_CONDITION } from '../../src/operator/service-addresses.js';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { sleep, until } from '../../lab/wait.js';
import { vipTables } from '../../lab/tables.js';
import { registerNode } from '../../lab/worker.js';

const ROOT = join(import.meta.dirname, '../..');
const log = pino({ level: process.env.XDPLB_TEST_LOG ?? 'silent' });
let cp: ControlPlane;
let kube: Kube;
const running: Operator[] = [];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

function operator(classless = false): Operator {
  const o = new Operator({ kube, namespace: 'xdplb-system', identity: `op-${running.length}`, leaderElect: false, leaseSeconds: 15, renewMs: 1000, resyncSeconds: 30, workers: 2, classlessServices: classless, log });
  running.push(o);
  return o;
}

const apply = async (yaml: string): Promise<void> => void (await cp.kubectl(['apply', '-f', '-'], { input: yaml }));
const getJson = async (args: string[]): Promise<Json> => JSON.parse((await cp.kubectl([...args, '-o', 'json'])).stdout) as Json;
const service = (ns: string, name: string) => getJson(['-n', ns, 'get', 'service', name]);
const ingress = (s: Json): { ip: string; ipMode?: string }[] => s.status?.loadBalancer?.ingress ?? [];
const addressCondition = (s: Json) => (s.status?.conditions as Json[] | undefined)?.find((c) => c.type === ADDRESS_CONDITION);

/** A Service of type LoadBalancer in `ns`, as YAML ending with a document separator. */
function serviceYaml(ns: string, name: string, o: { port?: number; cls?: string | null; annotations?: Record<string, string>; policy?: string; families?: string[] } = {}): string {
  const cls = o.cls === undefined ? 'xdplb.io/xdp' : o.cls;
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${ns}
  annotations: ${JSON.stringify(o.annotations ?? {})}
spec:
  type: LoadBalancer
  ${cls === null ? '' : `loadBalancerClass: ${cls}`}
  ${o.policy === undefined ? '' : `ipFamilyPolicy: ${o.policy}`}
  ${o.families === undefined ? '' : `ipFamilies: ${JSON.stringify(o.families)}`}
  selector: { app: ${name} }
  ports: [{ port: ${o.port ?? 80}, protocol: TCP }]
---
`;
}

const poolYaml = (name: string, addresses: string[], extra = ''): string => `apiVersion: xdplb.io/v1alpha1
kind: VipPool
metadata: { name: ${name} }
spec:
  addresses: ${JSON.stringify(addresses)}
${extra}---
`;

/** Waits until the Service's status names `n` addresses (or its condition is False, for n = 0). */
const assigned = (ns: string, name: string, n: number) =>
  until(`${ns}/${name} with ${n} address(es)`, async () => {
    const s = await service(ns, name);
    const c = addressCondition(s);
    if (c === undefined) return null;
    return (n === 0 ? c.status === 'False' : ingress(s).length === n) ? s : null;
  }, 30_000);

const events = async (ns: string, name: string): Promise<string[]> =>
  ((await getJson(['-n', ns, 'get', 'events', '--field-selector', `involvedObject.name=${name}`])).items as Json[]).map((e) => `${e.type} ${e.reason}: ${e.message}`);

beforeAll(async () => {
  cp = await startControlPlane({ crdDir: join(ROOT, 'crds'), dualStack: true });
  for (const ns of ['xdplb-system', 'shop', 'team']) await cp.kubectl(['create', 'namespace', ns]);
  await cp.kubectl(['label', 'namespace', 'team', 'tier=gold']);
  kube = new Kube(loadKubeConfig(cp.kubeconfigPath));
  await apply(poolYaml('main', ['10.70.0.0/30', '2001:db8:70::/126']));
  // Creation times have one-second resolution: gold is the younger pool.
  await sleep(1100);
  await apply(poolYaml('gold', ['10.71.0.1-10.71.0.3'], '  namespaceSelector: { matchLabels: { tier: gold } }\n'));
  await operator().start();
}, 180_000);

afterAll(async () => {
  for (const o of running) await o.stop().catch(() => undefined);
  await cp?.stop();
});

describe('Services of type LoadBalancer get addresses from VipPools', () => {
  it('a Service of the class gets the first free address, in status with ipMode VIP; one of another class is left alone', async () => {
    await apply(serviceYaml('shop', 'web') + serviceYaml('shop', 'other', { cls: 'example.com/other' }) + serviceYaml('shop', 'plain', { cls: null }));
    const web = await assigned('shop', 'web', 1);
    expect(ingress(web)).toEqual([{ ip: '10.70.0.0', ipMode: 'VIP' }]);
    expect(addressCondition(web)).toMatchObject({ status: 'True', reason: 'Assigned', message: '10.70.0.0 from pool main' });
    expect(await events('shop', 'web')).toContain('Normal AddressAssigned: Assigned 10.70.0.0 from pool main');
    // `kubectl get` shows it as EXTERNAL-IP.
    expect((await cp.kubectl(['-n', 'shop', 'get', 'service', 'web', '-o', 'jsonpath={.status.loadBalancer.ingress[0].ip}'])).stdout).toBe('10.70.0.0');
    // Another class, and no class (class-less serving is off): no address, no condition.
    for (const name of ['other', 'plain']) {
      const s = await service('shop', name);
      expect(ingress(s)).toEqual([]);
      expect(addressCondition(s)).toBeUndefined();
    }
  });

  it('a namespace selector gives the gold pool to the team namespace; pools count what is used', async () => {
    await apply(serviceYaml('team', 'api'));
    const api = await assigned('team', 'api', 1);
    // The older pool comes first, and main serves every namespace.
    expect(ingress(api)[0]!.ip).toBe('10.70.0.1');
    await apply(serviceYaml('team', 'gold', { annotations: { 'xdplb.io/address-pool': 'gold' } }));
    expect(ingress(await assigned('team', 'gold', 1))[0]!.ip).toBe('10.71.0.1');
    // The gold pool does not serve shop.
    await apply(serviceYaml('shop', 'wants-gold', { annotations: { 'xdplb.io/address-pool': 'gold' } }));
    expect(addressCondition(await assigned('shop', 'wants-gold', 0))).toMatchObject({ reason: 'NoPool', message: 'the pool gold does not serve this Service' });
    const main = await until('main pool usage', async () => {
      const p = await getJson(['get', 'vippool', 'main']);
      return p.status?.ipv4?.used === 2 ? p : null;
    });
    expect(main.status).toMatchObject({ ipv4: { total: 4, used: 2, free: 2 }, ipv6: { total: 4, used: 0, free: 4 }, usage: '2/4 IPv4, 0/4 IPv6' });
    expect(main.status.conditions.find((c: Json) => c.type === 'Ready')).toMatchObject({ status: 'True' });
  });

  it('a requested address, an address shared by key on another port, and a dual-stack Service', async () => {
    await apply(serviceYaml('shop', 'asks', { annotations: { 'xdplb.io/load-balancer-ips': '10.70.0.3' } }));
    expect(ingress(await assigned('shop', 'asks', 1))).toEqual([{ ip: '10.70.0.3', ipMode: 'VIP' }]);
    await apply(serviceYaml('shop', 'dns', { port: 53, annotations: { 'xdplb.io/load-balancer-ips': '10.70.0.3' } }));
    // Without a sharing key the address is not shared.
    expect(addressCondition(await assigned('shop', 'dns', 0))).toMatchObject({ reason: 'AddressInUse', message: '10.70.0.3 is in use by another Service' });
    await apply(serviceYaml('shop', 'asks', { annotations: { 'xdplb.io/load-balancer-ips': '10.70.0.3', 'xdplb.io/allow-shared-ip': 'edge' } }) + serviceYaml('shop', 'dns', { port: 53, annotations: { 'xdplb.io/load-balancer-ips': '10.70.0.3', 'xdplb.io/allow-shared-ip': 'edge' } }));
    expect(ingress(await assigned('shop', 'dns', 1))).toEqual([{ ip: '10.70.0.3', ipMode: 'VIP' }]);
    expect(await events('shop', 'dns')).toEqual(expect.arrayContaining(['Warning AllocationFailed: AddressInUse: 10.70.0.3 is in use by another Service', 'Normal AddressAssigned: Assigned 10.70.0.3 from pool main']));

    await apply(serviceYaml('shop', 'dual', { policy: 'RequireDualStack', families: ['IPv6', 'IPv4'] }));
    const dual = await assigned('shop', 'dual', 2);
    // main has one IPv4 address left (10.70.0.2): the dual-stack Service gets it and an IPv6 one, IPv6 first.
    expect(ingress(dual)).toEqual([{ ip: '2001:db8:70::', ipMode: 'VIP' }, { ip: '10.70.0.2', ipMode: 'VIP' }]);
  });

  it('an exhausted pool leaves a Service pending with the reason, and a deleted Service frees its address for it', async () => {
    await apply(serviceYaml('shop', 'late'));
    const late = await assigned('shop', 'late', 0);
    expect(addressCondition(late)).toMatchObject({ status: 'False', reason: 'PoolExhausted', message: 'every IPv4 address of main is in use' });
    expect(await events('shop', 'late')).toContain('Warning AllocationFailed: PoolExhausted: every IPv4 address of main is in use');
    const main = await until('main exhausted', async () => {
      const p = await getJson(['get', 'vippool', 'main']);
      return p.status?.conditions?.find((c: Json) => c.type === 'Exhausted')?.status === 'True' ? p : null;
    });
    expect(main.status.ipv4.free).toBe(0);
    await cp.kubectl(['-n', 'shop', 'delete', 'service', 'web']);
    expect(ingress(await assigned('shop', 'late', 1))).toEqual([{ ip: '10.70.0.0', ipMode: 'VIP' }]);
  });

  it('a pool overlapping an older one is refused with the reason; its addresses are not given', async () => {
    await apply(poolYaml('overlap', ['10.70.0.2-10.70.0.9']));
    const p = await until('the overlapping pool refused', async () => {
      const o = await getJson(['get', 'vippool', 'overlap']);
      return o.status?.conditions?.find((c: Json) => c.type === 'Ready')?.status === 'False' ? o : null;
    });
    expect(p.status.conditions.find((c: Json) => c.type === 'Ready')).toMatchObject({ reason: 'Overlap', message: 'its addresses overlap those of the older pool main' });
    const pools = (await cp.kubectl(['get', 'vippool'])).stdout;
    expect(pools).toMatch(/overlap\s+\["10\.70\.0\.2-10\.70\.0\.9"\]\s+0\/8 IPv4\s+False/);
  });

  it('class-less serving gives an address to a Service without a class, kubectl expose --type=LoadBalancer included; turned off, gives them back', async () => {
    for (const o of running.splice(0)) await o.stop();
    await operator(true).start();
    await apply(poolYaml('spare', ['10.72.0.0/30']));
    const plain = await assigned('shop', 'plain', 1);
    expect(ingress(plain)[0]!.ip).toBe('10.72.0.0');
    // What a user types: kubectl expose makes a class-less Service, and it gets the next address.
    await cp.kubectl(['-n', 'shop', 'expose', 'service', 'plain', '--name', 'exposed', '--type', 'LoadBalancer', '--port', '8080']);
    const exposed = await assigned('shop', 'exposed', 1);
    expect(exposed.spec.loadBalancerClass).toBeUndefined();
    expect(ingress(exposed)).toEqual([{ ip: '10.72.0.1', ipMode: 'VIP' }]);
    // Class-less serving off again: the addresses are released.
    for (const o of running.splice(0)) await o.stop();
    await operator(false).start();
    for (const name of ['plain', 'exposed']) {
      await until(`${name} released`, async () => {
        const s = await service('shop', name);
        return ingress(s).length === 0 && addressCondition(s) === undefined;
      }, 30_000);
    }
  });

  it('each address is a LoadBalancerVip over the nodes that deliver, weighted by their ready endpoints (Local)', async () => {
    // Three Nodes as kubelets register them (InternalIP, Ready); two run the decap role (fresh Decap reports).
    for (const [i, node] of ['w1', 'w2', 'w3'].entries()) await registerNode(cp, node, `10.0.1.${i + 1}`);
    for (const node of ['w1', 'w2']) {
      await apply(`apiVersion: xdplb.io/v1alpha1\nkind: NodeReport\nmetadata: { name: decap.${node}, namespace: xdplb-system }\nspec: { node: ${node}, role: Decap }\n`);
      await cp.kubectl(['-n', 'xdplb-system', 'patch', 'nodereport', `decap.${node}`, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { observedTime: new Date().toISOString(), reportIntervalSeconds: 3600 } })]);
    }
    await apply(serviceYaml('shop', 'local', { port: 8080 }).replace('type: LoadBalancer', 'type: LoadBalancer\n  externalTrafficPolicy: Local'));
    const svc = await assigned('shop', 'local', 1);
    const address = ingress(svc)[0]!.ip;
    // The endpoints, as the endpoint controller writes them: three pods on w1, one on w2, one on w3 (no decap role there).
    const endpoint = (ip: string, node: string) => ({ addresses: [ip], nodeName: node, conditions: { ready: true, serving: true, terminating: false } });
    await apply(JSON.stringify({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: 'local-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'local', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
      ports: [{ port: 8080, protocol: 'TCP' }],
      endpoints: [endpoint('10.244.1.2', 'w1'), endpoint('10.244.1.3', 'w1'), endpoint('10.244.1.4', 'w1'), endpoint('10.244.2.2', 'w2'), endpoint('10.244.3.2', 'w3')],
    }));
    const vip = await getJson(['-n', 'shop', 'get', 'loadbalancervip', 'svc.local.ipv4']);
    expect(vip.spec).toMatchObject({ address, mode: 'ipip', ports: [{ port: 8080, protocol: 'TCP' }], backends: { service: { name: 'local', delivery: 'Nodes', externalTrafficPolicy: 'Local' } }, healthCheck: { type: 'HTTP', port: svc.spec.healthCheckNodePort, path: '/healthz' } });
    expect(vip.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Service', name: 'local', uid: svc.metadata.uid })]);
    const table = await until('the nodes published as backends', async () => {
      const t = (await vipTables(cp, 'shop', 'svc.local.ipv4')).published;
      return t !== null && t.table.backends.length === 2 ? t : null;
    }, 30_000);
    expect(table.table.backends).toEqual([{ key: '10.0.1.1', weight: 300 }, { key: '10.0.1.2', weight: 100 }]);
    // The Service gives up its address: its VIP goes.
    await cp.kubectl(['-n', 'shop', 'delete', 'service', 'local']);
    await until('the VIP of the deleted Service gone', async () => {
      const r = await cp.kubectl(['-n', 'shop', 'get', 'loadbalancervip', 'svc.local.ipv4'], { allowFailure: true });
      return r.exitCode !== 0;
    }, 30_000);
  });
});
