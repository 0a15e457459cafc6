// scenarios.test.ts: the whole system end to end on one machine: a real
// kube-apiserver and etcd, two operator replicas, two load-balancer nodes
// running `xdplb agent --kubernetes` (network namespaces, as hostNetwork
// DaemonSet pods), four backends serving HTTP and a client reaching the VIPs
// over an ECMP route hashed on layer 4. Two VIPs share the backends: `web`
// forwards with ipip (backends run the decap program, stateless) and `shop`
// with l2dsr and the flow table on. Each scenario asserts and prints what it
// measured.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flowHash, tableIndex } from '../../src/core/flow-hash.js';
import { tableChange, type Table } from '../../src/core/maglev.js';
import { ipBytes } from '../../src/core/net.js';
import { backendYaml, LocalCluster } from '../../lab/cluster.js';
import { brokenBetween, ConnectionPool, type ConnResult } from '../../lab/connections.js';
import type { LbNode, LoadResult } from '../../lab/topology.js';
import { sleep, percentile } from '../../lab/wait.js';

const NS = 'shop';
const WEIGHTS = [100, 100, 200, 400];
const VIPS = { web: { address: '10.60.0.10', mode: 'ipip', flowTable: false }, shop: { address: '10.60.0.11', mode: 'l2dsr', flowTable: true } } as const;
type VipName = keyof typeof VIPS;
const NAMES = Object.keys(VIPS) as VipName[];

let c: LocalCluster;
const key = (v: VipName): string => `${NS}/${v}`;

function vipYaml(name: VipName, patch: Record<string, string> = {}): string {
  const v = VIPS[name];
  return `apiVersion: xdplb.io/v1alpha1
kind: LoadBalancerVip
metadata: { name: ${name}, namespace: ${NS} }
spec:
  address: ${patch.address ?? v.address}
  mode: ${patch.mode ?? v.mode}
  ports: [{ port: 80 }]
  hashing: { tableSize: ${patch.tableSize ?? 65537} }
  backends: { selector: { matchLabels: { app: web } } }
  healthCheck: { type: TCP }
  flowTable: { enabled: ${v.flowTable} }
`;
}

/** Waits until every node programmed `vip` with `serving` backends after the marks (per /status); when, by node. */
async function programmedEverywhere(vip: VipName, marks: Map<string, number>, serving: number, timeoutMs = 20_000): Promise<Record<string, number>> {
  const at: Record<string, number> = {};
  await Promise.all(
    c.nodes.map(async (n) => {
      const v = await c.programmed(n, key(vip), marks.get(`${n.name}|${key(vip)}`) ?? 0, (x) => x.serving === serving, timeoutMs);
      at[n.name] = v.programmedAt!;
    }),
  );
  return at;
}

/** Tables each node programmed for each VIP so far, keyed "node|namespace/name". */
function marks(): Map<string, number> {
  return new Map(c.nodes.flatMap((n) => NAMES.map((v) => [`${n.name}|${key(v)}`, c.programmings(n, key(v))] as const)));
}

/** Tables programmed on any node for any VIP since the marks. */
function programmedSince(m: Map<string, number>): number {
  return c.nodes.reduce((sum, n) => sum + NAMES.reduce((s, v) => s + c.programmings(n, key(v)) - (m.get(`${n.name}|${key(v)}`) ?? 0), 0), 0);
}

function vipPackets(node: LbNode, vip: VipName): number {
  return c.topo.metric(node, 'xdplb_vip_packets_total', { vip: key(vip) });
}

function nameOf(address: string): string {
  return c.backends.find((b) => b.address === address)?.name ?? address;
}

/** The backend a table sends the client's TCP flow from `port` to. */
function predicted(table: Table, vip: VipName, port: number): string {
  const h = flowHash({ src: ipBytes(c.topo.clientAddress), dst: ipBytes(VIPS[vip].address), sport: port, dport: 80, proto: 6 }, 'fiveTuple');
  return nameOf(table.backends[table.slots[tableIndex(h, table.size)]!]!.key);
}

async function startLoads(rate: number): Promise<{ stop(): Promise<LoadResult[]> }> {
  const loads = await Promise.all(NAMES.map((v) => c.topo.startLoad(rate, { vip: VIPS[v].address })));
  return { stop: () => Promise.all(loads.map((l) => l.stop())) };
}

async function setWeight(backend: string, weight: number): Promise<void> {
  await c.kubectl(['-n', NS, 'patch', 'backend', backend, '--type=merge', '-p', JSON.stringify({ spec: { weight } })]);
}

beforeAll(async () => {
  c = await LocalCluster.start({ tag: 'e2', nodes: 2, backends: 4, vips: NAMES.map((v) => VIPS[v].address) });
  for (const b of c.backends) c.topo.decap(b, [VIPS.web.address]);
  await c.kubectl(['create', 'namespace', NS]);
  await c.apply(c.backends.map((b, i) => backendYaml(NS, b, WEIGHTS[i]!, { app: 'web' })).join('') + NAMES.map((v) => vipYaml(v)).join('---\n'));
  for (const v of NAMES) await programmedEverywhere(v, new Map(), 4, 60_000);
}, 600_000);

afterAll(async () => {
  await c?.stop();
});

describe('two load-balancer nodes behind ECMP, a real control plane', () => {
  it('1. spreads thousands of flows by weight, within 4.5 standard deviations, over both nodes', async () => {
    const total = WEIGHTS.reduce((a, b) => a + b, 0);
    for (const v of NAMES) {
      const before = c.nodes.map((n) => vipPackets(n, v));
      const n = 4000;
      const r = await c.topo.load(['--count', String(n), '--concurrency', '16'], VIPS[v].address);
      expect(r.failed).toBe(0);
      const lines: string[] = [];
      c.backends.forEach((b, i) => {
        const p = WEIGHTS[i]! / total;
        const got = r.byBackend[b.name] ?? 0;
        const sigma = Math.sqrt(n * p * (1 - p));
        lines.push(`${b.name} ${(got / n * 100).toFixed(1)}% (expected ${(p * 100).toFixed(1)}%, ${((got - n * p) / sigma).toFixed(2)} sd)`);
        expect(Math.abs(got - n * p)).toBeLessThanOrEqual(4.5 * sigma);
      });
      const perNode = c.nodes.map((node, i) => vipPackets(node, v) - before[i]!);
      const share = perNode.map((x) => x / perNode.reduce((a, b) => a + b, 0));
      console.log(`[1] ${v} (${VIPS[v].mode}): ${n} flows: ${lines.join(', ')}; packets by node ${share.map((s) => `${(s * 100).toFixed(0)}%`).join(' / ')}`);
      // ECMP spreads flows (hashed on 5-tuples, so about half each way).
      for (const s of share) expect(s).toBeGreaterThan(0.3);
    }
  });

  it('2. keeps a long-lived connection and repeated flows of one 5-tuple on their backend', async () => {
    for (const v of NAMES) {
      const long = await c.topo.load(['--keepalive', '300', '--gap-ms', '2'], VIPS[v].address);
      expect(long.failed).toBe(0);
      expect(long.connections).toBe(1);
      expect(Object.keys(long.byBackend)).toHaveLength(1);
      const seen: string[] = [];
      for (const port of [41001, 41002, 41003, 41004, 41005, 41006]) {
        const r = await c.topo.load(['--count', '15', '--concurrency', '1', '--local-port', String(port)], VIPS[v].address);
        expect(r.errors).toEqual({});
        expect(Object.keys(r.byBackend)).toHaveLength(1);
        seen.push(Object.keys(r.byBackend)[0]!);
      }
      console.log(`[2] ${v}: 300 requests on one connection all answered by ${Object.keys(long.byBackend)[0]}; 6 source ports x 15 new connections each: ${seen.join(', ')} (one backend per 5-tuple)`);
    }
  });

  it('3. a live connection switched from one node to the other mid-stream keeps its backend', async () => {
    const [lb1, lb2] = c.nodes as [LbNode, LbNode];
    const pool = new ConnectionPool(c.topo.client);
    try {
      c.topo.routeVia([lb1]);
      const opened: ConnResult[] = [];
      for (const v of NAMES) opened.push(...(await pool.open(VIPS[v].address, 64)));
      expect(opened.every((x) => 'backend' in x)).toBe(true);
      const before = NAMES.map((v) => vipPackets(lb2, v));
      c.topo.routeVia([lb2]);
      const after = await pool.probe();
      const moved = NAMES.map((v, i) => vipPackets(lb2, v) - before[i]!);
      const { kept, broken } = brokenBetween(opened, after);
      console.log(`[3] 128 live connections (64 per VIP) moved from lb1 to lb2 by a route change: ${kept} kept their backend, ${broken.length} broke; lb2 carried ${moved.join(' + ')} packets of them`);
      expect(broken).toEqual([]);
      for (const m of moved) expect(m).toBeGreaterThanOrEqual(64);
    } finally {
      c.topo.routeVia(c.nodes);
      await pool.close();
    }
  });

  it('4. scale-out breaks only the minimum of established flows (stateless), none with the flow table', async () => {
    const pool = new ConnectionPool(c.topo.client);
    try {
      const old = await c.publishedTable(NS, 'web');
      const opened = [...(await pool.open(VIPS.web.address, 300)), ...(await pool.open(VIPS.shop.address, 300))];
      expect(opened.filter((x) => 'error' in x)).toEqual([]);
      const webIds = new Set(opened.slice(0, 300).map((x) => x.id));
      const m = marks();
      const b5 = c.topo.addBackend(5);
      c.topo.decap(b5, [VIPS.web.address]);
      await c.apply(backendYaml(NS, b5, 200, { app: 'web' }));
      for (const v of NAMES) await programmedEverywhere(v, m, 5);
      const next = await c.publishedTable(NS, 'web');
      const change = tableChange(old.table, next.table);
      const after = await pool.probe();

      const web = brokenBetween(opened.filter((x) => webIds.has(x.id)), after.filter((x) => webIds.has(x.id)));
      const shop = brokenBetween(opened.filter((x) => !webIds.has(x.id)), after.filter((x) => !webIds.has(x.id)));
      // Exactly the flows whose table slot changed owner broke, and the table moved the minimum.
      const expectBroken = opened.filter((x) => webIds.has(x.id) && predicted(old.table, 'web', x.port) !== predicted(next.table, 'web', x.port)).map((x) => x.id).sort((a, b) => a - b);
      console.log(
        `[4] backend be5 (weight 200 of 1000) added under 600 live connections: web (stateless ipip) ${web.broken.length}/300 = ${(web.broken.length / 3).toFixed(1)}% broke; ` +
          `table moved ${change.moved} slots of ${next.table.size} = ${((change.moved / next.table.size) * 100).toFixed(2)}%, theoretical minimum ${change.minimum} = ${((change.minimum / next.table.size) * 100).toFixed(2)}%; ` +
          `shop (l2dsr, flow table) ${shop.broken.length}/300 broke`,
      );
      expect(change.moved).toBe(change.minimum);
      expect(web.broken.map((x) => x.id).sort((a, b) => a - b)).toEqual(expectBroken);
      expect(shop.broken).toEqual([]);
      // New flows use the new backend.
      const fresh = await c.topo.load(['--count', '400'], VIPS.shop.address);
      expect(fresh.byBackend.be5).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  });

  it('5. a backend killed under load is routed around on both nodes at once, then leaves the tables (default health checks)', async () => {
    const rate = 100; // new connections per second, per VIP
    const load = await startLoads(rate);
    const perNode: Record<string, number[]> = Object.fromEntries(c.nodes.map((n) => [n.name, []]));
    const routed: number[] = [];
    const firstRouted: number[] = [];
    const tables: number[] = [];
    const serving = c.backends.length;
    let results: LoadResult[];
    try {
      for (let i = 0; i < 12; i++) {
        const victim = c.backends[i % serving]!;
        const m = marks();
        const t0 = Date.now();
        c.topo.stopServer(victim);
        // The datapath path: each node marks the victim down on its own (or, if the poll
        // comes late, already holds the operator's table without it).
        const at = await Promise.all(
          c.nodes.map(async (n) => {
            // When the node's write completed, by its own clock (/status lastDown); or its new table's time.
            const done = await c.topo.waitForAgent(
              `${victim.name} routed around on ${n.name}`,
              (st) => {
                const v = st.vips.find((x) => x.name === key('web'));
                const d = st.lastDown[victim.address];
                if (d !== undefined && d.since >= t0) return d.since;
                return (v?.programmings ?? 0) > (m.get(`${n.name}|${key('web')}`) ?? 0) ? v!.programmedAt : null;
              },
              { node: n, timeoutMs: 10_000 },
            );
            const ms = done - t0;
            perNode[n.name]!.push(ms);
            return ms;
          }),
        );
        routed.push(Math.max(...at));
        firstRouted.push(Math.min(...at));
        // The control-plane path: the operator's successor without it, programmed everywhere.
        const programmedAt = await programmedEverywhere('web', m, serving - 1);
        await programmedEverywhere('shop', m, serving - 1);
        tables.push(Math.max(...Object.values(programmedAt)) - t0);
        const back = marks();
        await c.topo.startServer(victim);
        await programmedEverywhere('web', back, serving);
        await programmedEverywhere('shop', back, serving);
      }
    } finally {
      results = await load.stop();
    }
    const failed = results.reduce((a, r) => a + r.failed, 0);
    const ok = results.reduce((a, r) => a + r.ok, 0);
    console.log(
      `[5] 12 backend kills under ${2 * rate} new connections/s: kill -> routed around on both nodes (their own probes, one map write; the write's time from /status): p50 ${percentile(routed, 50)} ms, p99 ${percentile(routed, 99)} ms, max ${Math.max(...routed)} ms ` +
        `(first node p50 ${percentile(firstRouted, 50)} ms; ${Object.entries(perNode).map(([n, xs]) => `${n} p50 ${percentile(xs, 50)} ms`).join(', ')}); ` +
        `kill -> the operator's table without it on both nodes: p50 ${percentile(tables, 50)} ms, p99 ${percentile(tables, 99)} ms; ` +
        `new connections failed ${failed} of ${ok + failed} (${(failed / 12).toFixed(1)} per kill): ${JSON.stringify(results.map((r) => r.errors))}`,
    );
    // A failed connection is one sent to the dead backend before the node routed around it:
    // refused at once (RST), never a hang, and no more than the traffic of those windows.
    for (const r of results) for (const e of Object.keys(r.errors)) expect(['ECONNREFUSED', 'ECONNRESET']).toContain(e);
    const windowed = routed.reduce((a, ms) => a + (2 * rate * (ms + 200)) / 1000, 0);
    expect(failed).toBeLessThanOrEqual(windowed);
  });

  it('6. restarting one node\'s agent under continuous load fails no connection', async () => {
    const node = c.nodes[0]!;
    const load = await startLoads(150);
    await sleep(1000);
    const digests = NAMES.map((v) => c.digests(key(v)));
    c.agent(node).child.kill('SIGKILL');
    await c.agent(node).exited;
    const t0 = Date.now();
    c.startAgent(node);
    const status = await c.topo.waitForAgent('attached, every VIP held in the kernel', (s) => s.vips.length === NAMES.length && s.vips.every((v) => v.digest !== null) && s, { node, timeoutMs: 30_000 });
    const adopted = status.datapath === 'adopt' ? status : undefined;
    const back = Date.now() - t0;
    await sleep(1500);
    const results = await load.stop();
    console.log(`[6] agent on ${node.name} killed (-9) and restarted under ${results.reduce((a, r) => a + r.ok + r.failed, 0)} connections: ${results.map((r) => r.failed).join(' + ')} failed; back in ${back} ms (${adopted === undefined ? 'reloaded' : 'adopted the pins'})`);
    expect(adopted).toBeDefined();
    for (const r of results) expect(r.failed).toBe(0);
    expect(NAMES.map((v) => c.digests(key(v)))).toEqual(digests);
  });

  it('7. the operator leader killed: the standby takes over, the datapath does not change', async () => {
    const leader = await c.leader();
    expect(leader).not.toBeNull();
    const replica = c.operators.find((o) => o.identity === leader)!;
    const load = await startLoads(100);
    const m = marks();
    const t0 = Date.now();
    let holder: string | null = leader;
    let takeover: number;
    let results: LoadResult[];
    try {
      await replica.kill('SIGKILL');
      while (holder === leader || holder === null) {
        await sleep(100);
        holder = await c.leader();
        if (Date.now() - t0 > 60_000) throw new Error('no standby took over in 60 s');
      }
    } finally {
      takeover = Date.now() - t0;
      await sleep(2000);
      results = await load.stop();
    }
    const changes = programmedSince(m);
    console.log(`[7] leader ${leader} killed (-9): ${holder} leads after ${takeover} ms (lease 5 s); datapath changes meanwhile: ${changes}; connections failed: ${results.map((r) => r.failed).join(' + ')}`);
    expect(changes).toBe(0);
    for (const r of results) expect(r.failed).toBe(0);
    // The new leader acts on changes.
    const m2 = marks();
    await setWeight('be1', 150);
    for (const v of NAMES) await programmedEverywhere(v, m2, c.backends.length);
  });

  it('8. the API server stopped for 30 s: traffic keeps flowing; changes made after it returns are programmed', async () => {
    const load = await startLoads(100);
    const m = marks();
    const t0 = Date.now();
    let during: number;
    try {
      await c.cp.stopApiserver();
      await sleep(30_000);
    } finally {
      during = programmedSince(m);
      await c.cp.startApiserver();
    }
    const back = Date.now();
    const m2 = marks();
    let at: Record<string, number>;
    let results: LoadResult[];
    try {
      await setWeight('be1', 120);
      at = await programmedEverywhere('web', m2, c.backends.length, 90_000);
      await programmedEverywhere('shop', m2, c.backends.length, 90_000);
    } finally {
      results = await load.stop();
    }
    console.log(`[8] API server down ${back - t0} ms: ${results.reduce((a, r) => a + r.ok, 0)} connections ok, ${results.map((r) => r.failed).join(' + ')} failed; datapath changes while down: ${during}; a change after it returned programmed on both nodes ${Math.max(...Object.values(at)) - back} ms after the restart (operator replicas replaced meanwhile: ${c.operators.map((o) => o.restarts).join(' + ')})`);
    expect(during).toBe(0);
    for (const r of results) expect(r.failed).toBe(0);
  });

  it('9. an invalid VIP is rejected by the API; nothing that runs changes', async () => {
    const m = marks();
    const before = NAMES.map((v) => c.digests(key(v)));
    const fresh = await c.cp.kubectl(['apply', '-f', '-'], { input: vipYaml('web', { tableSize: '1000' }).replace('name: web', 'name: broken'), allowFailure: true });
    expect(fresh.exitCode).not.toBe(0);
    expect(fresh.stderr).toMatch(/tableSize/);
    const update = await c.cp.kubectl(['apply', '-f', '-'], { input: vipYaml('web', { mode: 'tunnel' }), allowFailure: true });
    expect(update.exitCode).not.toBe(0);
    expect(update.stderr).toMatch(/mode/);
    const gone = await c.cp.kubectl(['-n', NS, 'get', 'vip', 'broken'], { allowFailure: true });
    expect(gone.exitCode).not.toBe(0);
    expect((await c.kubectl(['-n', NS, 'get', 'vip', 'web', '-o', 'jsonpath={.spec.mode}'])).stdout).toBe('ipip');
    await sleep(1500);
    const r = await c.topo.load(['--count', '300'], VIPS.web.address);
    const reason = (r: { stderr: string }, field: string): string => r.stderr.split('\n').find((l) => l.includes(field))?.trim() ?? r.stderr.trim();
    console.log(`[9] rejected: ${reason(fresh, 'tableSize')} | ${reason(update, 'mode')}; datapath changes: ${programmedSince(m)}; 300 connections after: ${r.failed} failed`);
    expect(r.failed).toBe(0);
    expect(programmedSince(m)).toBe(0);
    expect(NAMES.map((v) => c.digests(key(v)))).toEqual(before);
  });
});
