// second-chance.test.ts: no connection broken by a planned change (issue
// 17), on the whole lab system: a real kube-apiserver, two operators, two
// load-balancer nodes behind ECMP and four backends running the decap
// program, with a VIP in GUE mode (stateless: no flow table). Each backend
// forwards what it does not know to the slot's second hop through its own
// stack (ip_forward, as a Kubernetes node has). Long-lived connections
// exchange data across each change:
//   - a scale-out (a fifth backend) under 300 connections, with the route
//     switched from one load-balancer node to the other mid-test: the flows
//     whose slot moved (predicted from the two published tables) all keep
//     their backend;
//   - a backend drained (weight 0) under 300 connections: none breaks, and
//     no new connection reaches it;
//   - the drained backend removed once its connections ended: nothing
//     breaks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flowHash, tableIndex } from '../../src/core/flow-hash.js';
import { tableChange, type Table } from '../../src/core/maglev.js';
import { ipBytes } from '../../src/core/net.js';
import { backendYaml, LocalCluster } from '../../lab/cluster.js';
import { brokenBetween, ConnectionPool, type ConnResult } from '../../lab/connections.js';
import type { BackendNode, LbNode } from '../../lab/topology.js';
import { until } from '../../lab/wait.js';

const NS = 'shop';
const VIP = '10.60.0.10';
const KEY = `${NS}/web`;
let c: LocalCluster;

const vipYaml = `apiVersion: xdplb.io/v1alpha1
kind: LoadBalancerVip
metadata: { name: web, namespace: ${NS} }
spec:
  address: ${VIP}
  mode: gue
  secondChance: { drainSeconds: 600 }
  ports: [{ port: 80 }]
  hashing: { tableSize: 65537 }
  backends: { selector: { matchLabels: { app: web } } }
  healthCheck: { type: TCP }
`;

/** A backend ready for GUE: the decap program for the VIP (the lab turns forwarding on for second hops). */
function ready(b: BackendNode): void {
  c.topo.decap(b, [VIP]);
}

/** Waits until both nodes programmed the VIP after `marks` with `serving` backends. */
async function programmed(marks: Map<string, number>, serving: number): Promise<void> {
  for (const n of c.nodes) await c.programmed(n, KEY, marks.get(n.name) ?? 0, (v) => v.serving === serving, 30_000);
}

const marks = (): Map<string, number> => new Map(c.nodes.map((n) => [n.name, c.programmings(n, KEY)]));

const nameOf = (address: string): string => c.backends.find((b) => b.address === address)?.name ?? address;

/** The backend a table sends the client's flow from `port` to. */
function predicted(table: Table, port: number): string {
  const h = flowHash({ src: ipBytes(c.topo.clientAddress), dst: ipBytes(VIP), sport: port, dport: 80, proto: 6 }, 'fiveTuple');
  return nameOf(table.backends[table.slots[tableIndex(h, table.size)]!]!.key);
}

async function setWeight(backend: string, weight: number): Promise<void> {
  await c.kubectl(['-n', NS, 'patch', 'backend', backend, '--type=merge', '-p', JSON.stringify({ spec: { weight } })]);
}

const ok = (rs: readonly ConnResult[]): number => rs.filter((x) => 'backend' in x).length;

beforeAll(async () => {
  c = await LocalCluster.start({ tag: 'sc', nodes: 2, backends: 4, vips: [VIP] });
  for (const b of c.backends) ready(b);
  await c.kubectl(['create', 'namespace', NS]);
  await c.apply(c.backends.map((b) => backendYaml(NS, b, 100, { app: 'web' })).join('') + vipYaml);
  await programmed(new Map(), 4);
}, 600_000);

afterAll(async () => {
  c?.topo.routeVia(c.nodes);
  await c?.stop();
});

describe('second chance: planned changes under long-lived connections (mode gue, stateless)', () => {
  it('scale-out: 0 of 300 established connections break, the route switched between the nodes mid-test', async () => {
    const [lb1, lb2] = c.nodes as [LbNode, LbNode];
    const pool = new ConnectionPool(c.topo.client);
    try {
      const old = await c.publishedTable(NS, 'web');
      const opened = await pool.open(VIP, 300);
      expect(ok(opened)).toBe(300);
      const m = marks();
      const b5 = c.topo.addBackend(5);
      ready(b5);
      await b5.ready;
      await c.apply(backendYaml(NS, b5, 100, { app: 'web' }));
      await programmed(m, 5);
      const next = await c.publishedTable(NS, 'web');
      expect(next.table.secondHops).toBeDefined();
      // Each node's kernel holds the second hops: the digest it reads back is the published one.
      await until('both nodes report the published digest', () => Object.values(c.digests(KEY)).every((d) => d === next.digest), 30_000);
      const change = tableChange(old.table, next.table);
      // The flows the change moved: without second chance, each of them would break.
      const moved = opened.filter((x) => predicted(old.table, x.port) !== predicted(next.table, x.port));
      c.topo.routeVia([lb1]);
      const viaLb1 = await pool.probe();
      c.topo.routeVia([lb2]);
      const viaLb2 = await pool.probe();
      c.topo.routeVia(c.nodes);
      const first = brokenBetween(opened, viaLb1);
      const second = brokenBetween(opened, viaLb2);
      console.log(
        `[17] scale-out to 5 backends under 300 live connections (GUE, stateless): ${first.broken.length} broke through lb1, ${second.broken.length} through lb2; ` +
          `${moved.length} of them on slots that moved (${((change.moved / next.table.size) * 100).toFixed(1)}% of slots moved)`,
      );
      expect(moved.length).toBeGreaterThan(20);
      expect(first.broken).toEqual([]);
      expect(second.broken).toEqual([]);
      // New flows use the new backend.
      const fresh = await c.topo.load(['--count', '500']);
      expect(fresh.failed).toBe(0);
      expect(fresh.byBackend.be5).toBeGreaterThan(0);
    } finally {
      c.topo.routeVia(c.nodes);
      await pool.close();
    }
  });

  it('drain: a backend at weight 0 keeps its connections to their end, and no new connection reaches it', async () => {
    const pool = new ConnectionPool(c.topo.client);
    try {
      const opened = await pool.open(VIP, 300);
      expect(ok(opened)).toBe(300);
      const onVictim = opened.filter((x) => 'backend' in x && x.backend === 'be2').length;
      expect(onVictim).toBeGreaterThan(20);
      const m = marks();
      await setWeight('be2', 0);
      await programmed(m, 4);
      const after = await pool.probe();
      const { broken } = brokenBetween(opened, after);
      const fresh = await c.topo.load(['--count', '500']);
      console.log(`[17] be2 drained under 300 live connections (${onVictim} on it): ${broken.length} broke; 500 new connections: ${fresh.byBackend.be2 ?? 0} on be2, ${fresh.failed} failed`);
      expect(broken).toEqual([]);
      expect(fresh.failed).toBe(0);
      expect(fresh.byBackend.be2).toBeUndefined();
    } finally {
      await pool.close();
    }
  });

  it('removing the drained backend once its connections ended breaks nothing', async () => {
    const pool = new ConnectionPool(c.topo.client);
    try {
      const opened = await pool.open(VIP, 300);
      expect(ok(opened)).toBe(300);
      expect(opened.some((x) => 'backend' in x && x.backend === 'be2')).toBe(false);
      const m = marks();
      await c.kubectl(['-n', NS, 'delete', 'backend', 'be2']);
      for (const n of c.nodes) await c.programmed(n, KEY, m.get(n.name) ?? 0, (v) => !v.backends.some((b) => b.address === '10.50.0.12'), 30_000);
      const { broken } = brokenBetween(opened, await pool.probe());
      console.log(`[17] drained be2 removed under 300 live connections: ${broken.length} broke`);
      expect(broken).toEqual([]);
    } finally {
      await pool.close();
    }
  });
});
