// agent.ts: `npm run bench:agent [-- --json]`. How fast and how small the
// agent is in Kubernetes mode with 1, 100 and 1000 VIPs of 65537 slots (10
// backends each, alternates included), through its own production path: the
// operator's shared VipTables, parsed from JSON as an informer receives them
// -> kubeVips (decode, verify) -> KubernetesSource -> Engine passes (plan,
// mmap()ed inner maps swapped in batches, read-back) on a loaded xdp_lb.o.
// VIP v's backends are set v % 200 (`--sets N`): VIPs over one set share a
// table. The shards are computed once by this process (the operator's part, not
// timed) and each VIP count runs in its own process, so its RSS is its own.
// Measured per count:
//   fromScratchMs          published shards to every table programmed and checked
//   sharedBackendChangeMs  a new generation of every VIP (one shared backend out) to programmed
//   oneVipChangeMs         a new generation of one VIP to programmed
//   idlePassCpuMs          CPU of a pass with nothing to change (median of 9)
//   rssMiB                 resident memory 10 s after the changes (the shards of one
//                          generation, as the informer holds them, included)
//   peakRssMiB             its peak
// The baseline, measured in the same run: the kernel floor of from-scratch,
// creating the same distinct inner maps (one per backend set: VIPs with equal
// tables share one), writing their slots with one memory copy each and
// swapping every VIP's slot into lb_tables in batches, nothing else.
// Stand-in: MACs come from a fixed table instead of the node's neighbour
// table (there is no network here); everything else is the agent's own code.
// BENCH_PROFILE=file writes a CPU profile of a run's measured part.
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Session } from 'node:inspector/promises';

import pino from 'pino';
import { Engine } from '../src/agent/engine.js';
import { kubeVips, KubernetesSource, type PublishedCache } from '../src/agent/kubernetes-source.js';
import { AgentMetrics } from '../src/agent/metrics.js';
import { encodeTableSlots, SLOT_BYTES } from '../src/bpf/abi.js';
import { lbMaps } from '../src/bpf/datapath.js';
import { BpfObject, createMap, MapFlags, MapType } from '../src/bpf/loader.js';
import { releaseFreedMemory } from '../src/agent/memory.js';
import { MapWriter, type ControlSettings } from '../src/bpf/map-writer.js';
import { objectPath } from '../src/bpf/objects.js';
import { withAlternates } from '../src/core/alternates.js';
import { EMPTY_IMAGE } from '../src/core/datapath-plan.js';
import { buildTable, successorTable } from '../src/core/maglev.js';
import type { Table } from '../src/core/maglev.js';
import { assignedEntry, sharedTableObjects } from '../src/api/index.js';
import type { Obj } from '../src/kube/k8s.js';

const json = process.argv.includes('--json');
const BACKENDS = 10;
/** `--slots M` (a table size) and `--vips N` (one count) size other configurations; the default is the issue's. */
const flag = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
};
const SIZE = Number(flag('--slots') ?? 65537);
const COUNTS = flag('--vips') === undefined ? [1, 100, 1000] : [Number(flag('--vips'))];
/**
 * Distinct backend sets (`--sets N`, default 200): VIP v uses set v % SETS,
 * so VIPs share tables as a namespace's VIPs over a few pools do (the kernel
 * holds each distinct table once); `--sets 1000` is the worst case, a table
 * per VIP.
 */
const SETS = Number(flag('--sets') ?? 200);
if (!Number.isInteger(SETS) || SETS < 1 || SETS > 4096) {
  console.error('bench:agent: --sets must be an integer from 1 to 4096');
  process.exit(2);
}
const control: ControlSettings = { srcMac: '02:00:00:00:00:02', mtu: 1500, v4SrcPrefix: '172.16.0.0/16', v6SrcPrefix: 'fd00:7864:6c62::/96' };

interface Figures {
  fromScratchMs: number;
  sharedBackendChangeMs: number;
  oneVipChangeMs: number;
  idlePassCpuMs: number;
  rssMiB: number;
  peakRssMiB: number;
  floorMs: number;
}

function backendsOf(set: number, out: ReadonlySet<number> = new Set()) {
  return Array.from({ length: BACKENDS }, (_, b) => ({ key: `10.${1 + (set >> 8)}.${set & 255}.${b + 1}`, weight: out.has(b) ? 0 : 1 }));
}

function vipObject(v: number): Obj {
  return {
    apiVersion: 'xdplb.io/v1alpha1',
    kind: 'LoadBalancerVip',
    metadata: { namespace: 'bench', name: `vip-${v}`, uid: `uid-${v}`, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, v)) },
    spec: { address: `10.${100 + (v >> 8)}.${v & 255}.1`, mode: 'ipip', ports: [{ protocol: 'TCP', port: 80 }], hashing: { tableSize: SIZE } },
  } as Obj;
}

/** One line of a generation file: a shared table's objects (its list of VIPs left empty) and the VIPs it is published for. */
interface TableLine {
  readonly vips: readonly number[];
  readonly generation: number;
  readonly objects: Obj[];
}

function rss(): { now: number; peak: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
  return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/**
 * The kernel floor: the distinct tables of `n` VIPs (one per backend set)
 * created as inner maps and written with one memory copy each, and `n` outer
 * slots pointing at them, swapped into lb_tables in batches of 256.
 */
function floor(n: number): number {
  const obj = BpfObject.load(objectPath('xdp_lb.o'));
  try {
    const tables = lbMaps(obj).tables;
    const slots = Uint32Array.from({ length: SIZE }, (_, i) => i % BACKENDS);
    const packed = encodeTableSlots(slots, Uint32Array.from(slots, (o) => (o + 1) % BACKENDS));
    const bytes = new Uint8Array(packed.buffer);
    const t0 = performance.now();
    const distinct = Array.from({ length: Math.min(n, SETS) }, () => {
      const m = createMap({ type: MapType.ARRAY, name: 'floor', keySize: 4, valueSize: SLOT_BYTES, maxEntries: SIZE, flags: MapFlags.INNER_MAP | MapFlags.MMAPABLE });
      m.writeMapped(bytes);
      return m;
    });
    try {
      for (let from = 0; from < n; from += 256) {
        const count = Math.min(256, n - from);
        const keys = Uint32Array.from({ length: count }, (_, i) => from + i);
        const fds = Uint32Array.from(keys, (v) => distinct[v % distinct.length]!.fd);
        tables.updateBatch(new Uint8Array(keys.buffer), new Uint8Array(fds.buffer), count);
      }
    } finally {
      for (const m of distinct) m.close();
    }
    return performance.now() - t0;
  } finally {
    obj.close();
  }
}

/**
 * The operator's side, written once for every count: per generation, one line
 * of JSON per shared table (one per backend set: VIP v has set v % SETS)
 * holding its VipTable objects and the VIPs it is for (gen3: VIP 0 alone,
 * another backend out). A run reads them as an informer receives objects:
 * parsed from JSON, one at a time.
 */
function publish(dir: string): void {
  const n = Math.max(...COUNTS);
  const tableOf = (set: number, out: number[]): Table => {
    const first = withAlternates(buildTable({ size: SIZE, backends: backendsOf(set) }));
    return out.length === 0 ? first : withAlternates(successorTable(first, { size: SIZE, backends: backendsOf(set, new Set(out)) }));
  };
  const line = (set: number, vips: number[], generation: number, out: number[]): string =>
    JSON.stringify({ vips, generation, objects: sharedTableObjects('bench', tableOf(set, out), []) as unknown as Obj[] } satisfies TableLine);
  const sets = Array.from({ length: Math.min(SETS, n) }, (_, set) => set);
  const vipsOf = (set: number) => Array.from({ length: n }, (_, v) => v).filter((v) => v % SETS === set);
  writeFileSync(join(dir, 'gen1.ndjson'), sets.map((set) => line(set, vipsOf(set), 1, [])).join('\n'));
  writeFileSync(join(dir, 'gen2.ndjson'), sets.map((set) => line(set, vipsOf(set), 2, [0])).join('\n'));
  writeFileSync(join(dir, 'gen3.ndjson'), line(0, [0], 3, [0, 1]));
}

/** The VipTable objects of a generation file, each table listing those of its VIPs below `n` (tables with none left out). */
async function readObjects(file: string, n: number): Promise<Obj[]> {
  const out: Obj[] = [];
  let version = 0;
  for await (const l of createInterface({ input: createReadStream(file) })) {
    const t = JSON.parse(l) as TableLine;
    const vips = t.vips.filter((v) => v < n);
    if (vips.length === 0) continue;
    const assigned = vips.map((v) => assignedEntry(`vip-${v}`, t.generation, `uid-${v}`));
    for (const o of t.objects) {
      const spec = o.spec as { shard: { index: number } };
      out.push({ ...o, metadata: { ...o.metadata, resourceVersion: `${file}-${version++}` }, spec: spec.shard.index === 0 ? { ...spec, assigned } : spec } as Obj);
    }
  }
  return out;
}

/** One VIP count, in this process. */
async function run(dir: string, n: number): Promise<Figures> {
  const vips = Array.from({ length: n }, (_, v) => vipObject(v));
  let shards: Obj[] = [];
  // Each generation's objects are read before the clock starts, and the previous one's dropped
  // (the operator deletes a generation once the next is whole): the informer holds one per VIP.
  const generations: (() => Promise<Obj[]>)[] = [
    () => readObjects(join(dir, 'gen1.ndjson'), n),
    () => readObjects(join(dir, 'gen2.ndjson'), n),
    // VIP 0's newer table beside the rest (the operator drops its old entry at the next write of that list).
    async () => [...shards, ...(await readObjects(join(dir, 'gen3.ndjson'), 1))],
  ];
  const obj = BpfObject.load(objectPath('xdp_lb.o'));
  try {
    const writer = new MapWriter(lbMaps(obj));
    const macs = { resolve: () => Promise.resolve({ ok: true as const, mac: '02:be:00:00:00:01', nextHop: '10.0.0.254' }) };
    const engine = new Engine({ writer, control, resolver: macs, metrics: new AgentMetrics(), log: pino({ level: 'silent' }), releaseMemory: releaseFreedMemory }, EMPTY_IMAGE);
    const cache: PublishedCache = new Map();
    // BENCH_PROFILE=file: a CPU profile of the measured part (started after the object is loaded:
    // the profiler's signals make the verifier fail a load with EAGAIN).
    const profile = process.env.BENCH_PROFILE;
    const session = profile === undefined ? null : new Session();
    if (session !== null) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    const program = async (generation: number): Promise<number> => {
      shards = await generations[generation - 1]!();
      if (process.env.BENCH_MEMORY !== undefined) console.error(`generation ${generation} read: RSS ${rss().now.toFixed(0)} MiB`, JSON.stringify(process.memoryUsage()));
      const t0 = performance.now();
      const source = new KubernetesSource(kubeVips(vips, shards, {}, cache));
      const t1 = performance.now();
      engine.setSource(source);
      await engine.settled();
      if (process.env.BENCH_MEMORY !== undefined) console.error(`generation ${generation}: kubeVips ${(t1 - t0).toFixed(0)} ms, passes ${(performance.now() - t1).toFixed(0)} ms, RSS ${rss().now.toFixed(0)} MiB, peak ${rss().peak.toFixed(0)}`);
      return performance.now() - t0;
    };
    const expectProgrammed = (what: string): void => {
      const missing = [...engine.programmed.values()].filter((d) => d === null).length;
      if (engine.programmed.size !== n || missing > 0) throw new Error(`${what}: ${engine.programmed.size - missing} of ${n} VIPs programmed`);
    };
    const fromScratchMs = await program(1);
    expectProgrammed('from scratch');
    const sharedBackendChangeMs = await program(2);
    expectProgrammed('shared backend change');
    const oneVipChangeMs = await program(3);
    expectProgrammed('one VIP change');
    if (session !== null && process.env.BENCH_PROFILE_IDLE !== undefined) {
      await session.post('Profiler.stop');
      await session.post('Profiler.start');
    }
    const idle: number[] = [];
    for (let i = 0; i < 9; i++) {
      const c0 = process.cpuUsage();
      engine.trigger('bench');
      await engine.settled();
      const c = process.cpuUsage(c0);
      idle.push((c.user + c.system) / 1000);
    }
    idle.sort((a, b) => a - b);
    if (session !== null) {
      const { profile: p } = await session.post('Profiler.stop');
      writeFileSync(profile!, JSON.stringify(p));
      session.disconnect();
    }
    // What stays resident: the shard objects of the last generation stand for the informer cache, so they stay.
    // Steady state: what an idle agent holds a resync period later (V8 has collected by then).
    await new Promise((r) => setTimeout(r, Number(process.env.BENCH_SETTLE_MS ?? 10_000)));
    const memory = rss(); // VmHWM: the peak over the whole run
    if (process.env.BENCH_MEMORY !== undefined) console.error(JSON.stringify(process.memoryUsage()));
    engine.stop();
    void shards;
    return { fromScratchMs, sharedBackendChangeMs, oneVipChangeMs, idlePassCpuMs: idle[4]!, rssMiB: memory.now, peakRssMiB: memory.peak, floorMs: floor(n) };
  } finally {
    obj.close();
  }
}

const one = process.argv.indexOf('--run');
const only = process.argv.indexOf('--publish');
if (only >= 0) {
  publish(process.argv[only + 1]!); // for profiling one run: --publish DIR, then --run N DIR (same --slots)
} else if (one >= 0) {
  console.log(JSON.stringify(await run(process.argv[one + 2]!, Number(process.argv[one + 1]))));
} else {
  const dir = mkdtempSync(join(tmpdir(), 'xdplb-bench-agent-'));
  const vips: Record<string, Figures> = {};
  try {
    publish(dir);
    for (const n of COUNTS) {
      const out = execFileSync(process.execPath, [import.meta.filename, '--run', String(n), dir, '--slots', String(SIZE), '--sets', String(SETS)], { encoding: 'utf8', maxBuffer: 1 << 20 });
      vips[String(n)] = JSON.parse(out.trim().split('\n').at(-1)!) as Figures;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (json) {
    console.log(JSON.stringify({ vips }));
  } else {
    console.log(`bench:agent, Kubernetes mode (${BACKENDS} backends per VIP, ${SIZE} slots, alternates, ${SETS} backend sets; floor = create + mmap-write the distinct inner maps, batch-swap every slot)`);
    console.log('VIPs  from scratch     floor  ratio  shared change  one VIP change  idle pass CPU   RSS MiB  peak MiB');
    for (const n of COUNTS) {
      const f = vips[String(n)]!;
      console.log(
        `${String(n).padStart(4)} ${f.fromScratchMs.toFixed(0).padStart(11)}ms ${f.floorMs.toFixed(0).padStart(7)}ms ${(f.fromScratchMs / f.floorMs).toFixed(2).padStart(5)}x ${f.sharedBackendChangeMs.toFixed(0).padStart(12)}ms ${f.oneVipChangeMs.toFixed(1).padStart(13)}ms ${f.idlePassCpuMs.toFixed(1).padStart(12)}ms ${f.rssMiB.toFixed(0).padStart(9)} ${f.peakRssMiB.toFixed(0).padStart(9)}`,
      );
    }
  }
}
