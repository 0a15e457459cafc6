// agent-kubernetes.test.ts: the Kubernetes half end to end on one machine: a
// real kube-apiserver and etcd, the operator, and `xdplb agent --kubernetes`
// as a process in a load-balancer node's network namespace (as a hostNetwork
// DaemonSet pod), with real TCP from a client namespace to backend
// namespaces. `kubectl apply` of a VIP makes its maps appear on the node; a
// Backend change reaches the maps (time measured over 100 changes); a backend
// whose server dies leaves the table by the node's report; an EndpointSlice
// endpoint turning not ready is routed around by the node alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlane } from '../../lab/control-plane.js';
import type { AgentProcess, LbTopology } from '../../lab/topology.js';
import { until, percentile } from '../../lab/wait.js';
import { startAgentPlane, type AgentPlane } from '../support/agent-plane.js';

let plane: AgentPlane;
let cp: ControlPlane;
let topo: LbTopology;
let agent: AgentProcess;

async function apply(yaml: string): Promise<void> {
  await cp.kubectl(['apply', '-f', '-'], { input: yaml });
}

beforeAll(async () => {
  // The operator leader-elected, as the chart runs it.
  plane = await startAgentPlane('k8', 3, { leaderElect: true });
  ({ cp, topo } = plane);
  const kubeconfig = plane.lbKubeconfig;

  await apply(
    topo.backends
      .map((b) => `apiVersion: xdplb.io/v1alpha1\nkind: Backend\nmetadata: { name: ${b.name}, namespace: shop, labels: { app: web } }\nspec: { address: ${b.address}, weight: 100 }\n---\n`)
      .join('') +
      `apiVersion: xdplb.io/v1alpha1
kind: LoadBalancerVip
metadata: { name: web, namespace: shop }
spec:
  address: ${topo.vip}
  mode: l2dsr
  ports: [{ port: 80 }]
  hashing: { tableSize: 4093 }
  backends: { selector: { matchLabels: { app: web } } }
  healthCheck: { type: TCP, intervalMilliseconds: 100, timeoutMilliseconds: 80, unhealthyThreshold: 2, healthyThreshold: 2 }
`,
  );
  agent = topo.startAgent(null, ['--kubernetes', '--kubeconfig', kubeconfig, '--node-name', 'lb-1', '--namespace', 'xdplb-system']);
}, 240_000);

afterAll(async () => {
  await plane?.stop();
});

describe('agent in Kubernetes mode with the operator', () => {
  it('programs the VIP kubectl applied; the VIP becomes Ready; real connections flow', async () => {
    await topo.waitForAgent('attached', (s) => s, { timeoutMs: 30_000 });
    const vip = await until('Ready', async () => {
      const v = JSON.parse((await cp.kubectl(['-n', 'shop', 'get', 'vip', 'web', '-o', 'json'])).stdout) as { status?: { conditions?: { type: string; status: string }[]; nodesSummary?: string } };
      return v.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? v : null;
    }, 30_000);
    expect(vip.status!.nodesSummary).toBe('1/1');
    const r = await topo.load(['--count', '600', '--concurrency', '16']);
    expect(r.failed).toBe(0);
    expect(Object.keys(r.byBackend).sort()).toEqual(['be1', 'be2', 'be3']);
  });

  it('a Backend change reaches the maps: time from kubectl to programmed over 100 changes', async () => {
    const times: number[] = [];
    for (let i = 0; i < 100; i++) {
      const weight = i % 2 === 0 ? 150 : 100;
      const mark = topo.programmings('shop/web');
      const t0 = Date.now();
      await cp.kubectl(['-n', 'shop', 'patch', 'backend', 'be1', '--type=merge', '-p', JSON.stringify({ spec: { weight } })]);
      const programmed = await topo.programmed('shop/web', mark, () => true, { timeoutMs: 10_000 });
      times.push(programmed.programmedAt! - t0);
    }
    console.log(`kubectl patch -> maps programmed on the node, 100 changes: p50 ${percentile(times, 50)} ms, p99 ${percentile(times, 99)} ms, max ${Math.max(...times)} ms (includes kubectl's own start-up)`);
    expect(times).toHaveLength(100);
  });

  it('a backend whose server dies leaves the table through the node report and the operator', async () => {
    const victim = topo.backends[2]!;
    const mark = topo.programmings('shop/web');
    const t0 = Date.now();
    topo.stopServer(victim);
    const out = await topo.programmed('shop/web', mark, (v) => v.serving === 2, { timeoutMs: 15_000 });
    console.log(`backend killed -> node report -> operator -> maps without it: ${out.programmedAt! - t0} ms`);
    const r = await topo.load(['--count', '300']);
    expect(r.failed).toBe(0);
    expect(r.byBackend[victim.name]).toBeUndefined();
    const report = JSON.parse((await cp.kubectl(['-n', 'xdplb-system', 'get', 'nodereport', 'lb-1', '-o', 'json'])).stdout) as { status: { backends: { address: string; checks?: { check: string; healthy: boolean }[]; vips?: unknown }[] } };
    const entry = report.status.backends.find((b) => b.address === victim.address)!;
    // Health per check, no VIP lists (a report stays small at 1000 VIPs).
    expect(entry.checks).toEqual([{ check: 'tcp:80', healthy: false }]);
    expect(entry.vips).toBeUndefined();
    // It stays out (nodes keep probing it: no flapping), and comes back once its server does.
    await new Promise((r) => setTimeout(r, 1000));
    expect((await topo.load(['--count', '200'])).byBackend[victim.name]).toBeUndefined();
    const back = topo.programmings('shop/web');
    await topo.startServer(victim);
    await topo.programmed('shop/web', back, (v) => v.serving === 3, { timeoutMs: 15_000 });
    const again = await topo.load(['--count', '300']);
    expect(again.failed).toBe(0);
    expect(again.byBackend[victim.name]).toBeGreaterThan(0);
  });

  it('an endpoint turning not ready is routed around at once by the node, with the operator stopped; the operator\'s next table agrees', async () => {
    const endpoints = (notReady: string | null): string =>
      topo.backends.map((b) => `  - { addresses: [${b.address}], conditions: { ready: ${b.name !== notReady}, serving: ${b.name !== notReady}, terminating: false } }`).join('\n');
    const slice = (notReady: string | null): string => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: api-1, namespace: shop, labels: { kubernetes.io/service-name: api } }
addressType: IPv4
ports: [{ port: 80, protocol: TCP }]
endpoints:
${endpoints(notReady)}
`;
    // A second VIP over a Service whose pods are the same three backends (no health check: only the slices speak).
    await apply(`${slice(null)}---
apiVersion: xdplb.io/v1alpha1
kind: LoadBalancerVip
metadata: { name: api, namespace: shop }
spec:
  address: ${topo.vip}
  mode: l2dsr
  ports: [{ port: 8080 }]
  hashing: { tableSize: 1021 }
  backends: { service: { name: api } }
`);
    await topo.waitForAgent('api programmed over 3 endpoints', (s) => s.vips.find((v) => v.name === 'shop/api')?.serving === 3, { timeoutMs: 30_000 });
    const victim = topo.backends[0]!;
    await plane.stopOperator();
    const before = topo.agentStatus()!.vips.find((v) => v.name === 'shop/api')!;
    const t0 = Date.now();
    await apply(slice(victim.name));
    await topo.waitForAgent('the not-ready endpoint is down on the node', (s) => s.down.includes(victim.address), { timeoutMs: 10_000 });
    const ms = Date.now() - t0;
    // No new table: the node acted on the slice alone, and the backend is out for every VIP that uses it.
    const now = topo.agentStatus()!.vips.find((v) => v.name === 'shop/api')!;
    expect(now.digest).toBe(before.digest);
    expect(now.programmings).toBe(before.programmings);
    const r = await topo.load(['--count', '300']);
    expect(r.failed).toBe(0);
    expect(r.byBackend[victim.name]).toBeUndefined();
    console.log(`EndpointSlice endpoint not ready -> down on the node, operator stopped: ${ms} ms (includes kubectl's own start-up)`);

    // The operator comes back and publishes the table without it: the node's down state is no longer needed.
    await plane.startOperator('op-2');
    await topo.waitForAgent('the successor without it, and nothing down', (s) => s.vips.find((v) => v.name === 'shop/api')?.serving === 2 && s.down.length === 0, { timeoutMs: 30_000 });
    await cp.kubectl(['-n', 'shop', 'delete', 'vip', 'api']);
    await cp.kubectl(['-n', 'shop', 'delete', 'endpointslice', 'api-1']);
  });

  it('deleting the VIP removes it from the node', async () => {
    await cp.kubectl(['-n', 'shop', 'delete', 'vip', 'web']);
    await until('the VIP leaves the maps', async () => {
      const r = await topo.load(['--count', '5', '--timeout-ms', '300']);
      return r.ok === 0;
    }, 15_000);
    const r = await topo.load(['--count', '5', '--timeout-ms', '300']);
    expect(r.ok).toBe(0);
  });
});
