// decap-role.test.ts: the agent's decap role (issue 16) against a real
// kube-apiserver, with the operator and a load-balancer agent, real TCP in
// network namespaces. Two backends stand for worker nodes: each runs
// `xdplb agent --role decap` and has a Node object (InternalIP, Ready, as
// a kubelet would write it). A LoadBalancerVip delivered through nodes
// (backends.service.delivery Nodes) gets both nodes as backends once their
// decap roles report; the load balancer encapsulates to them and their decap
// programs unwrap, so the client's connections are answered. The backends
// hold the VIP on lo and answer it themselves: here that stands for the
// node's service proxy, which the lab's worker nodes with kube-proxy
// exercise instead. A decap role that stops reporting takes its node out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlane } from '../../lab/control-plane.js';
import type { AgentProcess, LbTopology } from '../../lab/topology.js';
import { vipTables } from '../../lab/tables.js';
import { until } from '../../lab/wait.js';
import { registerNode } from '../../lab/worker.js';
import { startAgentPlane, type AgentPlane } from '../support/agent-plane.js';

let plane: AgentPlane;
let cp: ControlPlane;
let topo: LbTopology;
const roles = new Map<string, AgentProcess>();

const apply = async (yaml: string): Promise<void> => void (await cp.kubectl(['apply', '-f', '-'], { input: yaml }));

beforeAll(async () => {
  plane = await startAgentPlane('dr', 2, { leaderElect: false });
  ({ cp, topo } = plane);
  topo.startAgent(null, ['--kubernetes', '--kubeconfig', plane.lbKubeconfig, '--node-name', 'lb-1', '--namespace', 'xdplb-system']);
  for (const b of topo.backends) {
    await registerNode(cp, b.name, b.address);
    roles.set(b.name, topo.startDecapRole(b, await topo.connectToApiserver(b, cp.server, cp.kubeconfigPath), 'xdplb-system'));
  }
  // The Service's endpoints, as the endpoint controller writes them: one ready pod on each node.
  await apply(`apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { selector: { app: web }, ports: [{ port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-abc, namespace: shop, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ port: 80, protocol: TCP }]
endpoints:
${topo.backends.map((b, i) => `  - { addresses: [10.244.${i + 1}.2], nodeName: ${b.name}, conditions: { ready: true, serving: true, terminating: false } }`).join('\n')}
---
apiVersion: xdplb.io/v1alpha1
kind: LoadBalancerVip
metadata: { name: web, namespace: shop }
spec:
  address: ${topo.vip}
  mode: ipip
  ports: [{ port: 80 }]
  hashing: { tableSize: 4093 }
  backends: { service: { name: web, delivery: Nodes, externalTrafficPolicy: Local } }
  healthCheck: { type: TCP, intervalMilliseconds: 100, timeoutMilliseconds: 80 }
`);
}, 240_000);

afterAll(async () => {
  await plane?.stop();
});

describe('the decap role on worker nodes', () => {
  it('decapsulates for the VIPs delivered through nodes and reports; the nodes become the VIP\'s backends', async () => {
    for (const b of topo.backends) {
      const s = await until(`${b.name}'s decap role takes the VIP`, () => {
        const st = topo.decapStatus(b);
        return st !== null && st.vips.includes(topo.vip) && st.reportedAt > 0 ? st : null;
      }, 30_000);
      expect(s.vips).toEqual([topo.vip]);
      const report = JSON.parse((await cp.kubectl(['-n', 'xdplb-system', 'get', 'nodereport', `decap.${b.name}`, '-o', 'json'])).stdout) as { spec: { node: string; role: string }; status: { interface?: string; decap?: { vips?: string[] } } };
      expect(report.spec).toEqual({ node: b.name, role: 'Decap' });
      // Started with --interface auto (as the chart does): the interface holding the Node's InternalIP.
      expect(report.status.interface).toBe('eth0');
      expect(report.status.decap?.vips).toEqual([topo.vip]);
    }
    const table = await until('both nodes published as backends', async () => {
      const t = (await vipTables(cp, 'shop', 'web')).published;
      return t !== null && t.table.backends.length === 2 ? t : null;
    }, 30_000);
    expect(table.table.backends).toEqual(topo.backends.map((b) => ({ key: b.address, weight: 100 })));
  });

  it('real connections through the load balancer reach both nodes, unwrapped by their decap programs', async () => {
    await topo.waitForAgent('the VIP programmed over both nodes', (s) => s.vips.find((v) => v.name === 'shop/web' && v.serving === 2), { timeoutMs: 30_000 });
    const r = await topo.load(['--count', '400', '--concurrency', '16']);
    expect(r.failed).toBe(0);
    expect(Object.keys(r.byBackend).sort()).toEqual(topo.backends.map((b) => b.name).sort());
    for (const b of topo.backends) expect(topo.decapStatus(b)!.packets.DECAP_OK ?? 0).toBeGreaterThan(0);
  });

  it('a decap role that stops takes its node out of the table once its report goes stale; its program stays attached', async () => {
    const [gone, stays] = topo.backends as [(typeof topo.backends)[0], (typeof topo.backends)[0]];
    const role = roles.get(gone.name)!;
    await until(`${gone.name}'s decap role up`, () => topo.decapStatus(gone), 30_000);
    role.child.kill('SIGTERM');
    await role.exited;
    const table = await until('the node out of the table', async () => {
      const t = (await vipTables(cp, 'shop', 'web')).published;
      return t !== null && t.table.backends.length === 1 ? t : null;
    }, 60_000);
    expect(table.table.backends).toEqual([{ key: stays.address, weight: 100 }]);
    // Without an uninstall the program stays: packets already on their way are still unwrapped.
    expect(gone.ns.run('ip', ['link', 'show', 'eth0'])).toMatch(/xdp/);
  });
});
