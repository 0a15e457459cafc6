// datapath.ts: the load balancer's maps by role, found by name in a loaded
// object (xdp_lb.o, or the benchmark object that shares its maps), and the
// readers of its per-CPU counters, and the map-shape check against abi.ts
// that the agent runs after loading.

import { ErrorCodes, isXdplbError, XdplbError } from '../core/errors.js';
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
  backendDown: BpfMap;
  ctl: BpfMap;
  flows: BpfMap;
  vipStats: BpfMap;
  backendStats: BpfMap;
  reasonStats: BpfMap;
}

/** Each role's map name in xdp_lb.o (also the pin file names). */
export const LB_MAP_NAMES: Readonly<Record<keyof LbMaps, string>> = {
  vips: 'lb_vips',
  vipFilter: 'lb_vip_filter',
  fragVips: 'lb_frag_vips',
  tables: 'lb_tables',
  backends: 'lb_backends',
  backendDown: 'lb_backend_down',
  ctl: 'lb_ctl',
  flows: 'lb_flows',
  vipStats: 'lb_vip_stats',
  backendStats: 'lb_backend_stats',
  reasonStats: 'lb_reason_stats',
};

/** `get` failed because there is no such map (a pin directory of an older build lacks a newer map). */
function missing(e: unknown): boolean {
  return isXdplbError(e) && (e.cause as { name?: unknown } | undefined)?.name === 'ENOENT';
}

/**
 * The maps by role, each obtained by name (from a loaded object, or opened
 * from pins). A map that does not exist (ENOENT: pins of a build without it)
 * is an ABI_MISMATCH, like a map of another shape: the agent then starts the
 * new maps from the desired state instead of from the old ones.
 */
export function lbMapsBy(get: (name: string) => BpfMap): LbMaps {
  const maps: Partial<Record<keyof LbMaps, BpfMap>> = {};
  for (const [role, name] of Object.entries(LB_MAP_NAMES) as [keyof LbMaps, string][]) {
    try {
      maps[role] = get(name);
    } catch (e) {
      if (missing(e)) throw new XdplbError(ErrorCodes.ABI_MISMATCH, `BPF maps do not match the TypeScript ABI: map ${name} is missing`, { cause: e });
      throw e;
    }
  }
  return maps as LbMaps;
}

export function lbMaps(obj: BpfObject): LbMaps {
  return lbMapsBy((name) => obj.map(name));
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
  expectShape(problems, m.backendDown, 4, 4, m.backends.maxEntries);
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
