// failover.test.ts: backend failure handled in the datapath (issue 13), on
// the whole system: a real kube-apiserver and etcd, two operator replicas,
// two load-balancer nodes behind ECMP, real TCP. A backend's server dies
// while the API server is stopped: each node's own probes mark it down in its
// own datapath (one map write), its slots take their published alternates,
// and new connections stop failing with no control plane at all. When the API
// server returns, the operator publishes the successor without the backend;
// connections opened to the alternates meanwhile keep their backend through
// that change (no flow moves twice). A backend shared by 1000 VIPs is routed
// around for all of them by the same one write per node.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendYaml, LocalCluster } from '../../lab/cluster.js';
import { brokenBetween, ConnectionPool } from '../../lab/connections.js';
import { sleep, until } from '../../lab/wait.js';

const NS = 'shop';
const VIP = '10.60.0.10';
let c: LocalCluster;

beforeAll(async () => {
  c = await LocalCluster.start({ tag: 'fo', nodes: 2, backends: 4, vips: [VIP] });
  await c.kubectl(['create', 'namespace', NS]);
  await c.apply(
    c.backends.map((b) => backendYaml(NS, b, 100, { app: 'web' })).join('') +
      `apiVersion: xdplb.io/v1alpha1
kind: LoadBalancerVip
metadata: { name: web, namespace: ${NS} }
spec:
  address: ${VIP}
  mode: l2dsr
  ports: [{ port: 80 }]
  hashing: { tableSize: 65537 }
  backends: { selector: { matchLabels: { app: web } } }
  healthCheck: { type: TCP }
`,
  );
  for (const n of c.nodes) await c.programmed(n, `${NS}/web`, 0, (v) => v.serving === 4, 60_000);
}, 600_000);

afterAll(async () => {
  await c?.stop();
});

describe('a dead backend is routed around in the datapath (issue 13)', () => {
  it('with the API server stopped: both nodes route around it on their own; the successor published later moves no flow twice', async () => {
    const victim = c.backends[1]!;
    const before = await c.publishedTable(NS, 'web');
    await c.cp.stopApiserver();
    let apiDown = true;
    const pool = new ConnectionPool(c.topo.client);
    try {
      const load = await c.topo.startLoad(200);
      await sleep(500);
      const killedAt = Date.now();
      c.topo.stopServer(victim);
      const at = await Promise.all(
        c.nodes.map(async (n) => {
          await c.topo.waitForAgent(`${victim.name} down on ${n.name}`, (s) => s.down.includes(victim.address), { node: n, timeoutMs: 5000 });
          return Date.now() - killedAt;
        }),
      );
      // Once both route around it, new connections succeed with no control plane.
      await sleep(500);
      const during = await c.topo.load(['--count', '300']);
      const r = await load.stop();
      console.log(`[13] ${victim.name} killed, API server down: routed around on both nodes after ${at.join(' / ')} ms (polled); then 300 new connections: ${during.failed} failed, ${during.byBackend[victim.name] ?? 0} to the victim; under 200 new connections/s: ${r.failed} failed in all`);
      expect(during.failed).toBe(0);
      expect(during.byBackend[victim.name]).toBeUndefined();
      // The datapath changed only its down state: the table the nodes hold is still the published one.
      expect(Object.values(c.digests(`${NS}/web`))).toEqual([before.digest, before.digest]);

      // Connections opened now reach the alternates; the successor must not move them again.
      const opened = await pool.open(VIP, 200);
      expect(opened.every((x) => 'backend' in x && x.backend !== victim.name)).toBe(true);
      await c.cp.startApiserver();
      apiDown = false;
      const next = await until('the successor without the victim', async () => {
        const t = await c.publishedTable(NS, 'web').catch(() => null);
        return t !== null && t.generation > before.generation ? t : null;
      }, 90_000);
      expect(next.table.backends.find((b) => b.key === victim.address)?.weight ?? 0).toBe(0);
      await until('both nodes hold the successor', () => Object.values(c.digests(`${NS}/web`)).every((d) => d === next.digest), 30_000);
      const after = await pool.probe();
      const { kept, broken } = brokenBetween(opened, after);
      console.log(`[13] successor generation ${next.generation} programmed on both nodes: ${kept} of ${opened.length} connections opened while routing around kept their backend, ${broken.length} moved twice`);
      expect(broken).toEqual([]);
    } finally {
      await pool.close();
      if (apiDown) await c.cp.startApiserver();
      await c.topo.startServer(victim);
    }
  });

  it('a backend shared by 1000 VIPs: both nodes route around it for all of them with one write each, no table rewritten', async () => {
    await until('nothing down, four serving', () => c.nodes.every((n) => {
      const s = c.topo.agentStatus(n);
      return s !== null && s.down.length === 0 && s.vips.every((v) => v.serving === 4);
    }), 120_000);
    // 999 more VIPs on the same address (other ports), over the same four backends, checked on port 80.
    const more = Array.from({ length: 999 }, (_, i) => `apiVersion: xdplb.io/v1alpha1
kind: LoadBalancerVip
metadata: { name: many-${i + 1}, namespace: ${NS} }
spec:
  address: ${VIP}
  mode: l2dsr
  ports: [{ port: ${10001 + i} }]
  hashing: { tableSize: 1021 }
  backends: { selector: { matchLabels: { app: web } } }
  healthCheck: { type: TCP, port: 80 }
---
`).join('');
    // 999 VIPs are about 2000 requests (kubectl apply reads each object before writing it): more than the default minute on a busy machine.
    await c.apply(more, 300_000);
    for (const n of c.nodes) {
      await c.topo.waitForAgent(`1000 VIPs programmed on ${n.name}`, (s) => s.vips.length === 1000 && s.vips.every((v) => v.serving === 4 && v.digest !== null), { node: n, timeoutMs: 480_000 });
    }
    const digests = c.nodes.map((n) => new Map(c.topo.agentStatus(n)!.vips.map((v) => [v.name, v.digest])));
    const victim = c.backends[2]!;
    // Running totals every 100 ms: the failures counted once both nodes route around the victim.
    let totals: { failed: number; errors: Record<string, number> } = { failed: 0, errors: {} };
    const load = await c.topo.startLoad(200, { reportMs: 100, onReport: (r) => (totals = r) });
    try {
      await sleep(300);
      const killedAt = Date.now();
      c.topo.stopServer(victim);
      const at = await Promise.all(c.nodes.map((n) => c.topo.waitForAgent(`${victim.name} down on ${n.name}`, (s) => (s.lastDown[victim.address]?.since ?? 0) >= killedAt && s.lastDown[victim.address]!.until === null && s.lastDown[victim.address]!.since, { node: n, timeoutMs: 10_000 })));
      // Routed around by the down state alone: every VIP's table on each node is still the one it held.
      c.nodes.forEach((n, i) => {
        const now = c.topo.agentStatus(n)!;
        const changed = now.vips.filter((v) => digests[i]!.get(v.name) !== v.digest && v.programmedAt! < at[i]!);
        expect(changed, `${n.name}: tables rewritten before the down write`).toEqual([]);
      });
      // A connection the victim refused before the write may still be reported a moment later.
      await sleep(300);
      const failedWhenRouted = totals.failed;
      const during = await c.topo.load(['--count', '300']);
      // The handover from the down state to the operator's successor tables (the victim at
      // weight 0, 1000 VIPs republished) under the same load: no new connection may fail in it.
      const republished = await Promise.all(
        c.nodes.map((n) => c.topo.waitForAgent(`the successor tables on ${n.name}`, (s) => s.vips.length === 1000 && s.vips.every((v) => v.serving === 3 && v.digest !== digests[0]!.get(v.name)) && Date.now(), { node: n, timeoutMs: 120_000 })),
      );
      await sleep(1000);
      const r = await load.stop();
      const handover = r.failed - failedWhenRouted;
      console.log(`[13] ${victim.name}, shared by 1000 VIPs, killed under 200 new connections/s: routed around on ${c.nodes.map((n, i) => `${n.name} after ${at[i]! - killedAt} ms`).join(', ')} (the agents' own timestamps of the write); then 300 new connections: ${during.failed} failed (${JSON.stringify(during.errors)}), ${during.byBackend[victim.name] ?? 0} to the victim; successor tables programmed ${republished.map((t) => t - killedAt).join(' / ')} ms after the kill; under load: ${failedWhenRouted} failed before both nodes routed around, ${handover} after (${JSON.stringify(r.errors)} in all)`);
      // On a failure, what each node held: its down state and when the victim went down and came back.
      const held = c.nodes.map((n) => {
        const s = c.topo.agentStatus(n);
        return `${n.name}: down ${JSON.stringify(s?.down)}, victim ${JSON.stringify(s?.lastDown[victim.address])}, routed around ${c.topo.metric(n, 'xdplb_agent_routed_around_total')} times`;
      }).join('; ');
      expect(during.failed, `errors by code: ${JSON.stringify(during.errors)}; ${held}`).toBe(0);
      expect(during.byBackend[victim.name], held).toBeUndefined();
      expect(handover, `failed under load after both nodes routed around the victim, through the republish`).toBe(0);
    } finally {
      await load.stop().catch(() => undefined);
      await c.topo.startServer(victim);
    }
  }, 600_000); // the operator publishes 1000 tables first (about a minute here)
});
