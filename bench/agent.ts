// agent.ts: `npm run bench:agent [-- --json]`. How fast and how small the
// agent is in Kubernetes mode with 1, 100 and 1000 VIPs of 65537 slots (10
// backends each, alternates included), through its own production path: the
// operator's published VipTable shards -> kubeVips (decode, verify) ->
// KubernetesSource -> Engine pass (plan, mmap()ed inner maps swapped in
// batches, read-back) on a loaded xdp_lb.o. Each VIP count runs in its own
// process, so its RSS is its own. Measured per count:
//   fromScratchMs          published shards to every table programmed and checked
//   sharedBackendChangeMs  a new generation of every VIP (one shared backend out) to programmed
//   oneVipChangeMs         a new generation of one VIP to programmed
//   idlePassCpuMs          CPU of a pass with nothing to change (median of 9)
//   rssMiB, peakRssMiB     resident memory after the changes (after a GC), and its peak
// The baseline, measured in the same run: the kernel floor of from-scratch,
// creating the same inner maps, writing their slots with one memory copy
// each and swapping them into lb_tables in batches, nothing else.
// Stand-in: MACs come from a fixed table instead of the node's neighbour
// table (there is no network here); everything else is the agent's own code.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

import pino from 'pino';
import { Engine } from '../src/agent/engine.js';
import { kubeVips, KubernetesSource, type PublishedCache } from '../src/agent/kubernetes-source.js';
import { AgentMetrics } from '../src/agent/metrics.js';
import { encodeTableSlots } from '../src/bpf/abi.js';
import { lbMaps } from '../src/bpf/datapath.js';
import { BpfObject, createMap, MapFlags, MapType } from '../src/bpf/loader.js';
import { MapWriter, type ControlSettings } from '../src/bpf/map-writer.js';
import { objectPath } from '../src/bpf/objects.js';
import { withAlternates } from '../src/core/alternates.js';
import { EMPTY_IMAGE } from '../src/core/datapath-plan.js';
import { buildTable, successorTable, type Table } from '../src/core/maglev.js';
import { encodeShards, shardObjectName, type TableShardSpec } from '../src/core/table-shards.js';
import type { Obj } from '../src/kube/k8s.js';

const json = process.argv.includes('--json');
const BACKENDS = 10;
const SIZE = 65537;
const COUNTS = [1, 100, 1000];
/** Distinct backend sets: VIP v uses set v % SETS (the tables are still one per VIP in the agent and the kernel). */
const SETS = 200;
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
  return Array.from({ length: BACKENDS }, (_, b) => ({ key: `10.0.${b}.${set + 1}`, weight: out.has(b) ? 0 : 1 }));
}

function vipObject(v: number): Obj {
  return {
    apiVersion: 'xdplb.io/v1alpha1',
    kind: 'LoadBalancerVip',
    metadata: { namespace: 'bench', name: `vip-${v}`, uid: `uid-${v}`, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, v)) },
    spec: { address: `10.${100 + (v >> 8)}.${v & 255}.1`, mode: 'ipip', ports: [{ protocol: 'TCP', port: 80 }], hashing: { tableSize: SIZE } },
  } as Obj;
}

/** The VipTable objects of one generation of a VIP's table, as the operator writes them. */
function shardObjects(v: number, generation: number, specs: readonly TableShardSpec[]): Obj[] {
  const name = `vip-${v}`;
  return specs.map((spec) => ({
    apiVersion: 'xdplb.io/v1alpha1',
    kind: 'VipTable',
    metadata: { namespace: 'bench', name: shardObjectName(name, generation, spec.shard.index), resourceVersion: `${generation}-${spec.shard.index}` },
    spec: { ...spec, vip: name } as unknown as Record<string, unknown>,
  }));
}

function rss(): { now: number; peak: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
  return { now: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** The kernel floor: `n` inner maps created, written with one memory copy each, swapped into lb_tables in batches of 256. */
function floor(n: number): number {
  const obj = BpfObject.load(objectPath('xdp_lb.o'));
  try {
    const tables = lbMaps(obj).tables;
    const slots = Uint32Array.from({ length: SIZE }, (_, i) => i % BACKENDS);
    const packed = encodeTableSlots(slots, Uint32Array.from(slots, (o) => (o + 1) % BACKENDS));
    const bytes = new Uint8Array(packed.buffer);
    const t0 = performance.now();
    for (let from = 0; from < n; from += 256) {
      const inner = Array.from({ length: Math.min(256, n - from) }, () => {
        const m = createMap({ type: MapType.ARRAY, name: 'floor', keySize: 4, valueSize: 4, maxEntries: SIZE, flags: MapFlags.INNER_MAP | MapFlags.MMAPABLE });
        m.writeMapped(bytes);
        return m;
      });
      const keys = Uint32Array.from(inner, (_, i) => from + i);
      const fds = Uint32Array.from(inner, (m) => m.fd);
      tables.updateBatch(new Uint8Array(keys.buffer), new Uint8Array(fds.buffer), inner.length);
      for (const m of inner) m.close();
    }
    return performance.now() - t0;
  } finally {
    obj.close();
  }
}

/** One VIP count, in this process. */
async function run(n: number): Promise<Figures> {
  // The operator's side, before the clock: the tables (one per backend set) and their shards.
  const tables = new Map<number, Table>();
  const tableOf = (set: number): Table => {
    let t = tables.get(set);
    if (t === undefined) tables.set(set, (t = withAlternates(buildTable({ size: SIZE, backends: backendsOf(set) }))));
    return t;
  };
  const successors = new Map<string, Table>();
  const successorOf = (set: number, out: number[]): Table => {
    const key = `${set}|${out.join(',')}`;
    let t = successors.get(key);
    if (t === undefined) successors.set(key, (t = withAlternates(successorTable(tableOf(set), { size: SIZE, backends: backendsOf(set, new Set(out)) }))));
    return t;
  };
  const encoded = new Map<Table, TableShardSpec[]>();
  const shardsOf = (v: number, generation: number, t: Table): Obj[] => {
    let specs = encoded.get(t);
    if (specs === undefined) encoded.set(t, (specs = encodeShards('x', generation, t)));
    return shardObjects(v, generation, specs.map((s) => ({ ...s, generation })));
  };
  const vips = Array.from({ length: n }, (_, v) => vipObject(v));
  const gen1 = vips.flatMap((_, v) => shardsOf(v, 1, tableOf(v % SETS)));
  const gen2 = vips.flatMap((_, v) => shardsOf(v, 2, successorOf(v % SETS, [0])));
  const gen3 = [...gen2.filter((o) => !o.metadata!.name!.startsWith('vip-0-')), ...shardsOf(0, 3, successorOf(0, [0, 1]))];

  const obj = BpfObject.load(objectPath('xdp_lb.o'));
  try {
    const writer = new MapWriter(lbMaps(obj));
    const macs = { resolve: () => Promise.resolve({ ok: true as const, mac: '02:be:00:00:00:01', nextHop: '10.0.0.254' }) };
    const engine = new Engine({ writer, control, resolver: macs, metrics: new AgentMetrics(), log: pino({ level: 'silent' }) }, EMPTY_IMAGE);
    const cache: PublishedCache = new Map();
    const program = async (shards: readonly Obj[]): Promise<number> => {
      const t0 = performance.now();
      engine.setSource(new KubernetesSource(kubeVips(vips, shards, {}, cache)));
      await engine.settled();
      return performance.now() - t0;
    };
    const expectProgrammed = (what: string): void => {
      const missing = [...engine.programmed.values()].filter((d) => d === null).length;
      if (engine.programmed.size !== n || missing > 0) throw new Error(`${what}: ${engine.programmed.size - missing} of ${n} VIPs programmed`);
    };
    const fromScratchMs = await program(gen1);
    expectProgrammed('from scratch');
    const sharedBackendChangeMs = await program(gen2);
    expectProgrammed('shared backend change');
    const oneVipChangeMs = await program(gen3);
    expectProgrammed('one VIP change');
    const idle: number[] = [];
    for (let i = 0; i < 9; i++) {
      const c0 = process.cpuUsage();
      engine.trigger('bench');
      await engine.settled();
      const c = process.cpuUsage(c0);
      idle.push((c.user + c.system) / 1000);
    }
    idle.sort((a, b) => a - b);
    const peak = rss().peak;
    // What stays resident: the bench's own inputs (the shard objects) stand for the informer cache, so they stay too.
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 200));
    const memory = rss();
    engine.stop();
    void [gen1, gen2, gen3];
    return { fromScratchMs, sharedBackendChangeMs, oneVipChangeMs, idlePassCpuMs: idle[4]!, rssMiB: memory.now, peakRssMiB: peak, floorMs: floor(n) };
  } finally {
    obj.close();
  }
}

const one = process.argv.indexOf('--run');
if (one >= 0) {
  console.log(JSON.stringify(await run(Number(process.argv[one + 1]))));
} else {
  const vips: Record<string, Figures> = {};
  for (const n of COUNTS) {
    const out = execFileSync(process.execPath, ['--expose-gc', import.meta.filename, '--run', String(n)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    vips[String(n)] = JSON.parse(out.trim().split('\n').at(-1)!) as Figures;
  }
  if (json) {
    console.log(JSON.stringify({ vips }));
  } else {
    console.log(`bench:agent, Kubernetes mode (${BACKENDS} backends per VIP, ${SIZE} slots, alternates; floor = create + mmap-write + batch-swap the same inner maps)`);
    console.log('VIPs  from scratch     floor  ratio  shared change  one VIP change  idle pass CPU   RSS MiB  peak MiB');
    for (const n of COUNTS) {
      const f = vips[String(n)]!;
      console.log(
        `${String(n).padStart(4)} ${f.fromScratchMs.toFixed(0).padStart(11)}ms ${f.floorMs.toFixed(0).padStart(7)}ms ${(f.fromScratchMs / f.floorMs).toFixed(2).padStart(5)}x ${f.sharedBackendChangeMs.toFixed(0).padStart(12)}ms ${f.oneVipChangeMs.toFixed(1).padStart(13)}ms ${f.idlePassCpuMs.toFixed(1).padStart(12)}ms ${f.rssMiB.toFixed(0).padStart(9)} ${f.peakRssMiB.toFixed(0).padStart(9)}`,
      );
    }
  }
}
