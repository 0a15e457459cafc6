// datapath.ts: the load balancer's maps by role, found by name in a loaded
// object (xdp_lb.o, or the benchmark object that shares its maps), and the
// readers of its per-CPU counters, and the map-shape check against abi.ts
// that the agent runs after loading.

import { ErrorCodes, XdplbError } from '../core/errors.js';
import {
  backendLayout,
  decapKeyLayout,
  flowKeyLayout,
  lbCounterLayout,
  lbCtlLayout,
  reasonName,
  REASON_MAX,
  sumCounters,
  u32Key,
  vipFilterLayout,
  vipKeyLayout,
  vipMetaLayout,
  type Counter,
  type ReasonName,
} from './abi.js';
import type { BpfMap, BpfObject } from './loader.js';

export interface LbMaps {
  vips: BpfMap;
  vipFilter: BpfMap;
  fragVips: BpfMap;
  tables: BpfMap;
  backends: BpfMap;
  ctl: BpfMap;
  flows: BpfMap;
  vipStats: BpfMap;
  backendStats: BpfMap;
  reasonStats: BpfMap;
}

export function lbMaps(obj: BpfObject): LbMaps {
  return {
    vips: obj.map('lb_vips'),
    vipFilter: obj.map('lb_vip_filter'),
    fragVips: obj.map('lb_frag_vips'),
    tables: obj.map('lb_tables'),
    backends: obj.map('lb_backends'),
    ctl: obj.map('lb_ctl'),
    flows: obj.map('lb_flows'),
    vipStats: obj.map('lb_vip_stats'),
    backendStats: obj.map('lb_backend_stats'),
    reasonStats: obj.map('lb_reason_stats'),
  };
}

export interface DecapMaps {
  vips: BpfMap;
  stats: BpfMap;
}

export function decapMaps(obj: BpfObject): DecapMaps {
  return { vips: obj.map('decap_vips'), stats: obj.map('decap_stats') };
}

/** One counter of a per-CPU counter array, summed over CPUs. */
export function readCounter(map: BpfMap, index: number): Counter {
  const perCpu = map.lookupPerCpu(u32Key(index));
  return perCpu === undefined ? { packets: 0n, bytes: 0n } : sumCounters(perCpu);
}

/** Every reason counter (lb_reason_stats or decap_stats), by name. */
export function readReasons(map: BpfMap): Record<ReasonName, Counter> {
  const out = {} as Record<ReasonName, Counter>;
  for (let code = 0; code < REASON_MAX; code++) out[reasonName[code]!] = readCounter(map, code);
  return out;
}

/** Packet counts by reason that changed between two readings. */
export function reasonDelta(before: Record<ReasonName, Counter>, after: Record<ReasonName, Counter>): Partial<Record<ReasonName, number>> {
  const out: Partial<Record<ReasonName, number>> = {};
  for (const name of reasonName) {
    const d = after[name].packets - before[name].packets;
    if (d !== 0n) out[name] = Number(d);
  }
  return out;
}

function expectShape(problems: string[], map: BpfMap, keySize: number, valueSize: number, entries?: number): void {
  if (map.keySize !== keySize || map.valueSize !== valueSize) {
    problems.push(`${map.name}: key/value ${String(map.keySize)}/${String(map.valueSize)} bytes, expected ${String(keySize)}/${String(valueSize)}`);
  }
  if (entries !== undefined && map.maxEntries !== entries) problems.push(`${map.name}: ${String(map.maxEntries)} entries, expected ${String(entries)}`);
}

/** The loaded object's maps have the shapes abi.ts encodes; throws ABI_MISMATCH otherwise. */
export function checkLbAbi(m: LbMaps): void {
  const problems: string[] = [];
  expectShape(problems, m.vips, vipKeyLayout.size, vipMetaLayout.size);
  expectShape(problems, m.vipFilter, 4, vipFilterLayout.size, 1);
  expectShape(problems, m.fragVips, vipKeyLayout.size, vipMetaLayout.size);
  expectShape(problems, m.tables, 4, 4);
  expectShape(problems, m.backends, 4, backendLayout.size);
  expectShape(problems, m.ctl, 4, lbCtlLayout.size, 1);
  expectShape(problems, m.flows, flowKeyLayout.size, 4);
  expectShape(problems, m.vipStats, 4, lbCounterLayout.size);
  expectShape(problems, m.backendStats, 4, lbCounterLayout.size);
  expectShape(problems, m.reasonStats, 4, lbCounterLayout.size, REASON_MAX);
  if (problems.length > 0) throw new XdplbError(ErrorCodes.ABI_MISMATCH, `BPF object does not match the TypeScript ABI:\n  ${problems.join('\n  ')}`);
}

export function checkDecapAbi(m: DecapMaps): void {
  const problems: string[] = [];
  expectShape(problems, m.vips, decapKeyLayout.size, 4);
  expectShape(problems, m.stats, 4, lbCounterLayout.size, REASON_MAX);
  if (problems.length > 0) throw new XdplbError(ErrorCodes.ABI_MISMATCH, `BPF object does not match the TypeScript ABI:\n  ${problems.join('\n  ')}`);
}
