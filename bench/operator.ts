// operator.ts: `npm run bench:operator [-- --json] [--vips N] [--backends N]
// [--nodes N] [--slots M]`. The real operator (the built CLI, its own
// process, leader election on) against a real kube-apiserver and etcd, with
// 1000 VIPs x 100 Backends and 50 load-balancer nodes (Node objects) whose
// NodeReports a simulator writes as agents would: each node reports, for
// every VIP, the newest whole generation published as programmed (a short
// entry each), and a TCP check per backend; a node rewrites its report
// when that changes, spaced as an agent spaces its writes
// (core/report-pace.ts), and every 10 s. Measured:
//   startToPublishedMs  operator start to a whole table published for every VIP
//   sharedChangeMs      every node reporting one shared backend failing its
//                       check, to every VIP republished without it (weight 0)
//   writesPerChange     the operator's API writes (from its /metrics, by verb
//                       and resource) from that change until every VIP's
//                       status shows the new table programmed on every node
//                       and the queue stayed empty for 3 s, per VIP; beside
//                       the target (shards
//                       changed + one status write per VIP)
//   cpuSeconds, rssMiB  the operator's CPU over the whole run and its resident
//                       memory at the end (its /metrics' process figures)
// The simulated nodes stand in for agents (no datapath here): what they
// report is what an agent reports once it has programmed a table.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { startControlPlane, type ControlPlane } from '../lab/control-plane.js';
import { ROOT, XDPLB } from '../lab/root.js';
import { sleep } from '../lab/wait.js';
import { API_VERSION, PLURALS } from '../src/api/coordinates.js';
import { programmedEntry } from '../src/api/nodereport.js';
import { reportSpacingMs } from '../src/core/report-pace.js';
import { candidateShards, TableIndex } from '../src/api/table-index.js';
import { newestWhole } from '../src/core/table-shards.js';
import { Kube, loadKubeConfig, type Obj } from '../src/kube/k8s.js';

const flag = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  const v = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`bench:operator: ${name} must be a positive integer`);
    process.exit(2);
  }
  return v;
};
const json = process.argv.includes('--json');
const VIPS = flag('--vips', 1000);
const BACKENDS = flag('--backends', 100);
const NODES = flag('--nodes', 50);
const SLOTS = flag('--slots', 65537);
const NS = 'bench';
const SYSTEM = 'xdplb-system';
const METRICS = '127.0.0.1:18091';
const say = (line: string): void => {
  if (!json) console.log(line);
};

const backendAddress = (b: number): string => `10.${200 + (b >> 16)}.${(b >> 8) & 255}.${b & 255}`;

/** The operator's heap limit as the chart sets it (values.yaml operator.heapMiB). */
function chartHeapMiB(): number {
  const values = parseYaml(readFileSync(join(ROOT, 'charts/xdplb/values.yaml'), 'utf8')) as { operator?: { heapMiB?: number } };
  return values.operator?.heapMiB ?? 768;
}

/** Samples of the operator's /metrics: name{labels} -> value. */
async function metrics(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://${METRICS}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** The operator's writes so far, by "verb resource" (its request histogram's counts, leases left out). */
async function writes(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const [k, v] of await metrics()) {
    const m = /^xdplb_operator_api_request_duration_seconds_count\{verb="([^"]+)",resource="([^"]+)"\}$/.exec(k);
    if (m === null || m[2] === 'leases' || !['create', 'update', 'patch', 'delete'].includes(m[1]!)) continue;
    out.set(`${m[1]} ${m[2]}`, (out.get(`${m[1]} ${m[2]}`) ?? 0) + v);
  }
  return out;
}

/** Creates objects through the API, a few at a time. */
async function createAll(kube: Kube, plural: string, objects: Obj[]): Promise<void> {
  const queue = [...objects];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let o = queue.shift(); o !== undefined; o = queue.shift()) {
        await kube.custom.createNamespacedCustomObject({ group: 'xdplb.io', version: 'v1alpha1', namespace: o.metadata!.namespace!, plural, body: o });
      }
    }),
  );
}

interface Published {
  generation: number;
  digest: string;
  /** Weight of the shared backend in that generation (undefined: not listed). */
  sharedWeight: number | undefined;
}

async function main(): Promise<void> {
  say(`bench:operator: ${VIPS} VIPs x ${BACKENDS} backends (${SLOTS} slots), ${NODES} simulated nodes`);
  const cp: ControlPlane = await startControlPlane({ crdDir: join(ROOT, 'crds') });
  let operator: ChildProcess | null = null;
  const timers: NodeJS.Timeout[] = [];
  try {
    await cp.kubectl(['create', 'namespace', SYSTEM]);
    await cp.kubectl(['create', 'namespace', NS]);
    const kube = new Kube(loadKubeConfig(cp.kubeconfigPath));
    const nodes = Array.from({ length: NODES }, (_, n) => `lb-${n}`);
    for (const n of nodes) await kube.core.createNode({ body: { apiVersion: 'v1', kind: 'Node', metadata: { name: n } } });
    await createAll(
      kube,
      PLURALS.backends,
      Array.from({ length: BACKENDS }, (_, b) => ({ apiVersion: API_VERSION, kind: 'Backend', metadata: { name: `be-${b}`, namespace: NS, labels: { app: 'bench' } }, spec: { address: backendAddress(b), weight: 100 } })),
    );
    await createAll(
      kube,
      PLURALS.vips,
      Array.from({ length: VIPS }, (_, v) => ({
        apiVersion: API_VERSION,
        kind: 'LoadBalancerVip',
        metadata: { name: `vip-${v}`, namespace: NS },
        spec: {
          address: `10.${100 + (v >> 8)}.${v & 255}.1`,
          ports: [{ port: 80 }],
          hashing: { tableSize: SLOTS },
          backends: { selector: { matchLabels: { app: 'bench' } } },
          healthCheck: { type: 'TCP' },
        },
      })),
    );
    say(`  ${NODES} Nodes, ${BACKENDS} Backends and ${VIPS} VIPs created`);

    // What is published, per VIP, as agents see it (the newest whole generation of its tables).
    const uids = new Map<string, string>();
    for (const v of ((await kube.custom.listNamespacedCustomObject({ group: 'xdplb.io', version: 'v1alpha1', namespace: NS, plural: PLURALS.vips })) as { items: Obj[] }).items) uids.set(v.metadata!.name!, v.metadata!.uid!);
    const index = new TableIndex();
    const published = new Map<string, Published>();
    const shared = backendAddress(0);
    const tables = kube.customInformer(PLURALS.tables);
    const refresh = (o: Obj, gone: boolean): void => {
      for (const key of index.note(o, gone)) {
        const name = key.slice(NS.length + 1);
        const newest = index.candidates(NS, name, uids.get(name) ?? '').find((c) => c.whole);
        const whole = newest === undefined ? null : newestWhole(candidateShards(newest, key));
        if (whole !== null) published.set(name, { generation: whole.generation, digest: whole.digest, sharedWeight: whole.backends.find((b) => b.key === shared)?.weight });
      }
    };
    tables.on('add', (o) => refresh(o, false));
    tables.on('update', (o) => refresh(o, false));
    tables.on('delete', (o) => refresh(o, true));
    tables.on('error', (err: unknown) => {
      say(`  VipTable watch failed (${(err as Error)?.message ?? String(err)}); restarting it`);
      setTimeout(() => void tables.start().catch(() => undefined), 500);
    });
    await tables.start();

    // The simulated nodes: each reports every VIP's newest whole generation as programmed.
    let failing = false;
    const lastSent = new Map<string, string>();
    /** Per node: whether its last report written says the shared backend fails. */
    const reportedFailing = new Map<string, boolean>();
    const report = async (node: string, force: boolean): Promise<void> => {
      const programmed = [...published].map(([name, p]) => programmedEntry(`${NS}/${name}`, p.generation, p.digest)).sort();
      const backends = Array.from({ length: BACKENDS }, (_, b) => ({ address: backendAddress(b), checks: [{ check: 'tcp:80', healthy: !(failing && b === 0) }], resolved: true, reason: failing && b === 0 ? 'failed health checks' : '' }));
      const body = { interface: 'eth0', xdpMode: 'native', reportIntervalSeconds: 10, programmed, backends, programmedSummary: `${programmed.length}/${VIPS}` };
      const text = JSON.stringify(body);
      if (!force && lastSent.get(node) === text) return;
      lastSent.set(node, text);
      const at = performance.now();
      const sentFailing = failing;
      await kube.patchStatus(PLURALS.reports, SYSTEM, node, { ...body, observedTime: new Date().toISOString() });
      reportedFailing.set(node, sentFailing);
      pace.set(node, { at, tookMs: performance.now() - at });
    };
    // Per node: when its last write started and how long it took (an agent spaces its writes by these: core/report-pace.ts).
    const pace = new Map<string, { at: number; tookMs: number }>();
    const inFlight = new Set<string>();
    const lastForced = new Map<string, number>();
    for (const n of nodes) {
      await kube.custom.createNamespacedCustomObject({ group: 'xdplb.io', version: 'v1alpha1', namespace: SYSTEM, plural: PLURALS.reports, body: { apiVersion: API_VERSION, kind: 'NodeReport', metadata: { name: n, namespace: SYSTEM }, spec: { node: n } } });
      await report(n, true);
    }
    timers.push(
      setInterval(() => {
        const now = performance.now();
        for (const n of nodes) {
          const p = pace.get(n) ?? { at: -Infinity, tookMs: 0 };
          // A health flip not yet reported is urgent, as the agent's is (core/report-pace.ts).
          const urgent = failing !== (reportedFailing.get(n) ?? false);
          if (inFlight.has(n) || now < p.at + reportSpacingMs(p.tookMs, 10, urgent)) continue;
          const force = now - (lastForced.get(n) ?? 0) >= 10_000;
          if (force) lastForced.set(n, now);
          inFlight.add(n);
          void report(n, force)
            .catch(() => undefined)
            .finally(() => inFlight.delete(n));
        }
      }, 100),
    );

    // The operator, as its Deployment runs it (the chart's heap limit included).
    const t0 = performance.now();
    // BENCH_OPERATOR_PROFILE=dir: a CPU profile of the operator, written when it exits.
    const profile = process.env.BENCH_OPERATOR_PROFILE;
    operator = spawn(process.execPath, [`--max-old-space-size=${chartHeapMiB()}`, ...(profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profile}`]), XDPLB, 'operator', '--kubeconfig', cp.kubeconfigPath, '--namespace', SYSTEM, '--identity', 'bench', '--health-address', METRICS, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const progress = setInterval(() => say(`  ${published.size}/${VIPS} VIPs published after ${((performance.now() - t0) / 1000).toFixed(0)} s (${tables.list().length} VipTables seen)`), 15_000);
    timers.push(progress);
    while (published.size < VIPS) await sleep(100);
    const startToPublishedMs = performance.now() - t0;
    clearInterval(progress);
    say(`  every VIP published ${(startToPublishedMs / 1000).toFixed(1)} s after the operator started`);

    // Let the nodes report every generation and the operator settle its status writes.
    // Settled: every VIP's status names its newest published generation as
    // programmed on every node (the state, not the queue: a status write may
    // wait for its rollout as a delayed key the queue depth does not show),
    // then 3 s with nothing queued.
    const statusCaughtUp = async (): Promise<boolean> => {
      const list = (await kube.custom.listNamespacedCustomObject({ group: 'xdplb.io', version: 'v1alpha1', namespace: NS, plural: PLURALS.vips })) as { items: Obj[] };
      return list.items.every((v) => {
        const st = v.status as { table?: { generation?: number }; nodes?: { programmed?: number; expected?: number } } | undefined;
        const p = published.get(v.metadata!.name!);
        return p !== undefined && st?.table?.generation === p.generation && st.nodes?.expected === NODES && st.nodes.programmed === NODES;
      });
    };
    const settle = async (): Promise<void> => {
      while (!(await statusCaughtUp())) await sleep(500);
      let quietSince = performance.now();
      for (;;) {
        await sleep(250);
        const depth = (await metrics()).get('xdplb_operator_workqueue_depth') ?? 0;
        if (depth > 0) quietSince = performance.now();
        else if (performance.now() - quietSince > 3000) return;
      }
    };
    await settle();

    // One shared backend fails its check on every node: the operator takes it out of every VIP by quorum.
    const before = new Map([...published].map(([k, p]) => [k, p.generation]));
    const writesBefore = await writes();
    const t1 = performance.now();
    const spacings = nodes.map((n) => reportSpacingMs(pace.get(n)?.tookMs ?? 0, 10));
    say(`  the nodes' routine report spacing when the backend fails: ${Math.min(...spacings)}-${Math.max(...spacings)} ms (core/report-pace.ts, from their last write's latency; the health flip itself waits at most ${reportSpacingMs(0, 10, true)} ms)`);
    failing = true;
    const changed = (): number => [...published].filter(([k, p]) => p.generation !== before.get(k) && p.sharedWeight === 0).length;
    const progress2 = setInterval(() => say(`  ${changed()}/${VIPS} VIPs republished without the backend after ${((performance.now() - t1) / 1000).toFixed(0)} s`), 15_000);
    timers.push(progress2);
    let firstChangedMs: number | undefined;
    while (changed() < VIPS) {
      if (firstChangedMs === undefined && changed() > 0) firstChangedMs = performance.now() - t1;
      await sleep(50);
    }
    const sharedChangeMs = performance.now() - t1;
    say(`  the first VIP republished ${((firstChangedMs ?? sharedChangeMs) / 1000).toFixed(1)} s after the nodes began reporting, the last ${(sharedChangeMs / 1000).toFixed(1)} s`);
    clearInterval(progress2);
    say(`  every VIP republished without the shared backend ${(sharedChangeMs / 1000).toFixed(1)} s after the nodes reported it`);
    await settle();
    const writesAfter = await writes();
    const byKind: Record<string, number> = {};
    let total = 0;
    for (const [k, v] of writesAfter) {
      const d = v - (writesBefore.get(k) ?? 0);
      if (d > 0) byKind[k] = d;
      total += d;
    }
    const shardsPerTable = Math.max(1, Math.ceil(SLOTS / 262144));
    const m = await metrics();
    const result = {
      startToPublishedMs,
      sharedChangeMs,
      writesPerChange: total / VIPS,
      writesPerChangeTarget: shardsPerTable + 1,
      writesByKind: byKind,
      cpuSeconds: m.get('xdplb_operator_process_cpu_seconds_total') ?? NaN,
      rssMiB: (m.get('xdplb_operator_process_resident_memory_bytes') ?? NaN) / 1024 / 1024,
      heapUsedMiB: (m.get('xdplb_operator_nodejs_heap_size_used_bytes') ?? NaN) / 1024 / 1024,
      externalMiB: (m.get('xdplb_operator_nodejs_external_memory_bytes') ?? NaN) / 1024 / 1024,
      reconciles: (m.get('xdplb_operator_reconciles_total{result="success"}') ?? 0) + (m.get('xdplb_operator_reconciles_total{result="error"}') ?? 0),
      tablesPublished: m.get('xdplb_operator_tables_published_total') ?? NaN,
    };
    if (json) console.log(JSON.stringify(result));
    else {
      say(`  writes per VIP for the change: ${result.writesPerChange.toFixed(2)} (target ${result.writesPerChangeTarget}: ${shardsPerTable} shard + 1 status), by kind ${JSON.stringify(byKind)}`);
      say(`  operator: ${result.cpuSeconds.toFixed(1)} s of CPU over the run, ${result.rssMiB.toFixed(0)} MiB resident (heap ${result.heapUsedMiB.toFixed(0)} MiB used, ${result.externalMiB.toFixed(0)} MiB external), ${result.reconciles} reconciles, ${result.tablesPublished} tables published`);
    }
  } finally {
    for (const t of timers) clearInterval(t);
    if (operator !== null && operator.exitCode === null) {
      const exited = new Promise((r) => operator!.once('exit', r));
      operator.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
    }
    await cp.stop();
  }
}

await main();
process.exit(0);
