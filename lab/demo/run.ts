// run.ts: `xdplb demo`, the whole system live on this machine. Starts the
// lab cluster (real kube-apiserver and etcd, two operator replicas, two
// load-balancer nodes with agents in Kubernetes mode, backends, a client
// behind ECMP), applies a VIP with kubectl and runs traffic through it. Along
// the way it kills a backend's server (measuring the failover on each node),
// adds a backend (measuring the established flows moved against the
// theoretical minimum) and brings the killed one back. Everything is torn
// down at the end, on Ctrl-C, and on failure.
import { flowHash, tableIndex } from '../../src/core/flow-hash.js';
import { tableChange, type Table } from '../../src/core/maglev.js';
import { ipBytes } from '../../src/core/net.js';
import { backendYaml, LocalCluster } from '../cluster.js';
import { brokenBetween, ConnectionPool } from '../connections.js';
import type { BackendNode, LbNode, LbTopology } from '../topology.js';
import { expectedShares, flowsBetween, sampleAt, type BackendInfo, type DemoEvent, type DemoSummary, type NodeTable, type TrafficSample } from './model.js';
import { renderReport } from './report.js';
import { renderView } from './view.js';

export interface DemoOptions {
  readonly duration: number;
  readonly rate: number;
  readonly mode: 'ipip' | 'gue' | 'l2dsr';
  readonly flows: number;
  readonly reportPath: string | null;
  /** Redraw the live view (a terminal); otherwise events are printed as lines. */
  readonly live: boolean;
  readonly color: boolean;
  readonly width: () => number;
  /** Progress and event lines (stderr). */
  readonly progress: (line: string) => void;
  /** The live view, written whole (stdout). */
  readonly draw: (screen: string) => void;
  readonly writeFile: (path: string, text: string) => void;
  /** Aborted by Ctrl-C: the demo stops early and cleans up. */
  readonly signal: AbortSignal;
}

const NS = 'demo';
const VIP = { name: 'web', address: '10.60.0.10', port: 80, tableSize: 65537 };
const WEIGHTS = [100, 100, 200, 100];

class Aborted extends Error {}

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const events: DemoEvent[] = [];
  const samples: TrafficSample[] = [];
  const nodes: Record<string, NodeTable> = {};
  let start = Date.now();
  const now = (): number => (Date.now() - start) / 1000;
  const event = (kind: DemoEvent['kind'], text: string, at = now()): void => {
    events.push({ t: at, kind, text });
    if (!o.live) o.progress(`${at.toFixed(1).padStart(6)}s  ${text}`);
  };
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve, reject) => {
      if (o.signal.aborted) return reject(new Aborted());
      const timer = setTimeout(() => (o.signal.removeEventListener('abort', onAbort), resolve()), ms);
      const onAbort = (): void => (clearTimeout(timer), reject(new Aborted()));
      o.signal.addEventListener('abort', onAbort, { once: true });
    });

  const summary: DemoSummary = {
    vip: { name: VIP.name, address: VIP.address, port: VIP.port, mode: o.mode, tableSize: VIP.tableSize },
    nodes: [],
    durationSeconds: 0,
    failoverMs: {},
    failedDuringFailover: null,
    moved: null,
    broken: null,
    minimum: null,
    movedSlots: null,
    flowsMeasured: 0,
    requests: { ok: 0, failed: 0 },
    distribution: {},
    events,
    report: null,
    complete: false,
  };

  o.progress('xdplb demo: building what is missing and starting the system (the first run builds the control plane from source: about 15 min)');
  const cluster = await LocalCluster.start({ tag: 'demo', nodes: 2, backends: WEIGHTS.length, vips: [VIP.address], build: true, progress: (l) => o.progress(`  ${l}`) });
  const backends: BackendInfo[] = [];
  let load: Awaited<ReturnType<LbTopology['startLoad']>> | null = null;
  const pool = new ConnectionPool(cluster.topo.client);
  let redraw: NodeJS.Timeout | null = null;
  try {
    summary.nodes = cluster.nodes.map((n) => n.name);
    for (const n of cluster.nodes) {
      nodes[n.name] = { digest: null, serving: null, generation: 0 };
      summary.failoverMs[n.name] = null;
    }
    const info = (b: BackendNode, weight: number): BackendInfo => ({ name: b.name, address: b.address, weight, state: 'serving' });
    cluster.backends.forEach((b, i) => backends.push(info(b, WEIGHTS[i]!)));
    if (o.mode !== 'l2dsr') for (const b of cluster.backends) cluster.topo.decap(b, [VIP.address]);

    await cluster.kubectl(['create', 'namespace', NS]);
    const vipYaml = `apiVersion: xdplb.io/v1alpha1
kind: LoadBalancerVip
metadata: { name: ${VIP.name}, namespace: ${NS} }
spec:
  address: ${VIP.address}
  mode: ${o.mode}
  ports: [{ port: ${VIP.port} }]
  hashing: { tableSize: ${VIP.tableSize} }
  backends: { selector: { matchLabels: { app: web } } }
  healthCheck: { type: TCP }
`;
    o.progress(`  kubectl apply -f - <<EOF\n${vipYaml.replace(/^/gm, '    ')}  EOF  (and ${WEIGHTS.length} Backends, weights ${WEIGHTS.join(', ')})`);
    await cluster.apply(cluster.backends.map((b, i) => backendYaml(NS, b, WEIGHTS[i]!, { app: 'web' })).join('') + vipYaml);
    const key = `${NS}/${VIP.name}`;
    await Promise.all(cluster.nodes.map((n) => cluster.programmed(n, key, 0, (l) => l.serving === WEIGHTS.length, 60_000)));
    if (o.signal.aborted) throw new Aborted();

    // Traffic: new connections at a steady rate, running totals four times a second.
    start = Date.now();
    // What each node programmed, from its agent's /status (read back from its kernel).
    const follow = (): void => {
      for (const n of cluster.nodes) {
        const v = cluster.topo.agentStatus(n)?.vips.find((x) => x.name === key);
        const t = nodes[n.name]!;
        if (v === undefined || v.programmings <= t.generation) continue;
        t.digest = v.digest ?? '';
        t.serving = v.serving;
        t.generation = v.programmings;
        if (t.generation > 1) event('programmed', `${n.name} programmed table ${String(v.digest).slice(7, 19)}… (${v.serving} backends serving)`, Math.max(0, ((v.programmedAt ?? Date.now()) - start) / 1000));
      }
    };
    follow();
    event('info', `${o.rate} new connections/s from the client to ${VIP.address}:${VIP.port}, ECMP over ${cluster.nodes.map((n) => n.name).join(' and ')}`);
    load = await cluster.topo.startLoad(o.rate, { vip: VIP.address, reportMs: 250, onReport: (r) => samples.push({ t: (r.t - start) / 1000, ok: r.ok, failed: r.failed, byBackend: r.byBackend }) });
    const draw = (): void => {
      follow();
      if (o.live) o.draw(renderView({ vip: { name: VIP.name, address: VIP.address, port: VIP.port, mode: o.mode }, t: now(), duration: o.duration, backends, samples, nodes, events, width: o.width(), color: o.color }));
    };
    redraw = setInterval(draw, 250);
    const until = async (t: number): Promise<void> => {
      while (now() < t) await sleep(Math.min(250, (t - now()) * 1000 + 1));
    };
    const allNodes = (mark: Map<string, number>, serving: number): Promise<Record<string, number>> =>
      Promise.all(cluster.nodes.map(async (n: LbNode) => [n.name, (await cluster.programmed(n, key, mark.get(n.name) ?? 0, (v) => v.serving === serving, 30_000)).programmedAt!] as const)).then(Object.fromEntries);
    const marks = (): Map<string, number> => new Map(cluster.nodes.map((n) => [n.name, cluster.programmings(n, key)]));

    // 1. A backend's server dies.
    await until(Math.max(4, o.duration * 0.2));
    const victim = cluster.backends[1]!;
    const mark = marks();
    const killedAt = Date.now();
    const failedBefore = samples.at(-1)?.failed ?? 0;
    cluster.topo.stopServer(victim);
    backends[1]!.state = 'killed';
    event('kill', `killed the HTTP server of ${victim.name} (${victim.address})`);
    // Each node routes around it on its own (its probes, one map write to its down state),
    // before the operator's next table; the node's /status says when its write completed.
    // (If the poll comes after the operator's table already took it out, the table's time counts.)
    await Promise.all(
      cluster.nodes.map(async (n: LbNode) => {
        const at = await cluster.topo.waitForAgent(
          `${victim.name} routed around on ${n.name}`,
          (st) => {
            const v = st.vips.find((x) => x.name === key);
            const d = st.lastDown[victim.address];
            if (d !== undefined && d.since >= killedAt) return d.since;
            return (v?.programmings ?? 0) > (mark.get(n.name) ?? 0) ? v!.programmedAt : null;
          },
          { node: n, timeoutMs: 30_000 },
        );
        summary.failoverMs[n.name] = at - killedAt;
      }),
    );
    await sleep(500); // connections refused before the nodes routed around it are counted by then
    summary.failedDuringFailover = (samples.at(-1)?.failed ?? 0) - failedBefore;
    event('measure', `failover: ${Object.entries(summary.failoverMs).map(([n, ms]) => `${n} ${String(ms)} ms`).join(', ')} from the kill to the node routing around ${victim.name} in its datapath (its own probes, one map write); ${summary.failedDuringFailover} new connections failed meanwhile`);
    const updated = await allNodes(mark, WEIGHTS.length - 1);
    event('measure', `the operator's table without ${victim.name} programmed: ${Object.entries(updated).map(([n, t]) => `${n} ${t - killedAt} ms`).join(', ')} after the kill`);

    // 2. A backend joins while connections are established.
    await until(Math.max(8, o.duration * 0.45));
    event('info', `holding ${o.flows} established connections to measure how many move`);
    const opened = await pool.open(VIP.address, o.flows);
    const old = await cluster.publishedTable(NS, VIP.name);
    const added = cluster.topo.addBackend(cluster.backends.length + 1);
    if (o.mode !== 'l2dsr') cluster.topo.decap(added, [VIP.address]);
    await added.ready;
    const addMark = marks();
    await cluster.apply(backendYaml(NS, added, 100, { app: 'web' }));
    backends.push(info(added, 100));
    event('add', `kubectl apply: Backend ${added.name} (${added.address}, weight 100)`);
    await allNodes(addMark, WEIGHTS.length);
    const next = await cluster.publishedTable(NS, VIP.name);
    const change = tableChange(old.table, next.table);
    const probed = await pool.probe();
    const { broken } = brokenBetween(opened, probed);
    const established = opened.filter((c) => 'backend' in c);
    const measured = established.length;
    // A flow moved when its slot changed owner between the two tables (the client's port picks the slot).
    const slotOf = (table: Table, port: number): number =>
      tableIndex(flowHash({ src: ipBytes(cluster.topo.clientAddress), dst: ipBytes(VIP.address), sport: port, dport: VIP.port, proto: 6 }, 'fiveTuple'), table.size);
    const ownerOf = (table: Table, port: number): string => table.backends[table.slots[slotOf(table, port)]!]!.key;
    const moved = established.filter((c) => ownerOf(old.table, c.port) !== ownerOf(next.table, c.port)).length;
    summary.flowsMeasured = measured;
    summary.moved = measured === 0 ? null : moved / measured;
    summary.broken = broken.length;
    summary.minimum = change.minimum / next.table.size;
    summary.movedSlots = change.moved / next.table.size;
    event('measure', `scale-out: ${broken.length} of ${measured} established flows broke (${(summary.movedSlots * 100).toFixed(1)}% of slots moved; ${moved} of the flows were on them; theoretical minimum ${(summary.minimum * 100).toFixed(1)}%)`);
    await pool.close();

    // 3. The killed backend comes back.
    await until(Math.max(12, o.duration * 0.7));
    const reviveMark = marks();
    await cluster.topo.startServer(victim);
    event('info', `restarted the HTTP server of ${victim.name}`);
    await allNodes(reviveMark, WEIGHTS.length + 1);
    backends[1]!.state = 'serving';

    await until(o.duration);
    summary.complete = true;
  } catch (e) {
    if (!(e instanceof Aborted)) throw e;
    event('warn', 'interrupted: stopping and cleaning up');
  } finally {
    if (redraw !== null) clearInterval(redraw);
    const result = load === null ? null : await load.stop().catch(() => null);
    if (result !== null) summary.requests = { ok: result.ok, failed: result.failed };
    summary.durationSeconds = now();
    const last = samples.at(-1);
    if (last !== undefined) {
      // The distribution since the last table change, against the weights then.
      const since = events.filter((e) => e.kind === 'programmed').at(-1)?.t ?? 0;
      const flows = flowsBetween(sampleAt(samples, since + 0.5), last);
      const total = Object.values(flows).reduce((a, b) => a + b, 0);
      const expected = expectedShares(backends);
      for (const b of backends) summary.distribution[b.name] = { address: b.address, weight: b.weight, flows: flows[b.name] ?? 0, share: total > 0 ? (flows[b.name] ?? 0) / total : 0, expected: expected[b.name] ?? 0 };
    }
    if (o.reportPath !== null) {
      summary.report = o.reportPath;
      o.writeFile(o.reportPath, renderReport(summary, samples));
    }
    await pool.close();
    o.progress('xdplb demo: tearing down (namespaces, processes, pins, control plane)');
    await cluster.stop();
  }
  return summary;
}
