// desired-state.ts: what the datapath should hold, computed from the VIPs and
// backends wanted (standalone config), what the node's probes and neighbour
// tables say, and the tables programmed now. Each VIP's table is the
// minimal-disruption successor of its current one, over the backends that are
// serving: weight > 0, MAC resolved, and healthy. If probes fail for every
// resolved backend the VIP fails open (all resolved backends keep serving,
// reported as panic): a health check that is wrong everywhere must not take a
// service down. A VIP with no resolved backend is programmed without a table
// (its packets are dropped and counted). Every configured backend keeps its
// datapath entry, drained or unhealthy ones too, so flows the flow table
// holds for them continue. Pure: no I/O.
import type { BackendWeight } from './backends.js';
import { tableDigest } from './digest.js';
import { tableWithContent, type BackendImage, type DesiredDatapath, type DesiredVip, type Protocol, type VipFeatures, type VipMode } from './datapath-plan.js';
import type { Table } from './maglev.js';
import { digestOf, TableMemo } from './table-memo.js';
import { isTableSize, type TableSize } from './table-sizes.js';


export interface VipSpec {
  readonly name: string;
  readonly address: string;
  readonly ports: readonly { readonly port: number; readonly protocol: Protocol }[];
  readonly mode: VipMode;
  readonly affinity: 'fiveTuple' | 'sourceIp';
  readonly flowTable: boolean;
  readonly tableSize: number;
  readonly backends: readonly { readonly address: string; readonly weight: number }[];
}

export type MacResolution = { readonly ok: true; readonly mac: string } | { readonly ok: false; readonly reason: string };

/**
 * What desiredState computed per VIP last time, so an unchanged VIP costs
 * nothing: its table is reused while its inputs (size, serving backends and
 * weights) are the same. It is the table wanted: if the maps hold another
 * (changed behind the agent's back), the plan writes this one back, not a
 * successor of what was found.
 */
export class DesiredMemo {
  readonly entries = new Map<string, { inputs: string; table: Table; counts: Map<string, number> }>();
  /** Tables computed for one VIP serve every other VIP over the same backends. */
  readonly tables = new TableMemo();
}

export interface Observations {
  /** Health of a VIP's backend; absent = not probed = healthy. */
  readonly healthy: (vip: string, address: string) => boolean;
  /** MAC to use for a backend address; absent = not resolved yet. */
  readonly mac: (address: string) => MacResolution | undefined;
  /** The table programmed now for a VIP (owners by address), if any. */
  readonly currentTable: (vip: string) => Table | undefined;
}

export interface BackendStatus {
  readonly address: string;
  readonly weight: number;
  /** As this node's probes find it; null: not probed (no health check). */
  readonly healthy: boolean | null;
  readonly resolved: boolean;
  /** Why it is not serving, or null. */
  readonly reason: string | null;
  readonly slots: number;
}

export interface VipStatus {
  readonly name: string;
  /** Digest of the table this node wants programmed (null: none). */
  readonly digest: string | null;
  readonly tableSize: number;
  /** Every resolved backend failed its probes: serving all of them anyway. null: not this node's decision (Kubernetes mode: the operator's). */
  readonly panic: boolean | null;
  /** The backends of the wanted table in its order, with weights (what a read-back digest is computed against). */
  readonly listed: readonly BackendWeight[];
  readonly backends: readonly BackendStatus[];
  /** Slots moved from the previous table (null for a new or size-changed table). */
  readonly moved: number | null;
}

/** What the datapath does with a VIP's packets, in words (the map writer owns the bits). */
export function featuresOf(spec: Pick<VipSpec, 'mode' | 'affinity' | 'flowTable'>): VipFeatures {
  return { mode: spec.mode, affinity: spec.affinity, flowTable: spec.flowTable };
}

function familyOf(address: string): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

export function desiredState(vips: readonly VipSpec[], obs: Observations, memo?: DesiredMemo): { desired: DesiredDatapath; status: VipStatus[] } {
  const backends = new Map<string, BackendImage>();
  const desiredVips: DesiredVip[] = [];
  const status: VipStatus[] = [];

  const tables = memo?.tables ?? new TableMemo();
  for (const vip of vips) {
    if (!isTableSize(vip.tableSize)) throw new RangeError(`VIP ${vip.name}: table size ${vip.tableSize} is not allowed`);
    const size: TableSize = vip.tableSize;
    const resolved = vip.backends.filter((b) => b.weight > 0 && obs.mac(b.address)?.ok === true);
    const healthy = resolved.filter((b) => obs.healthy(vip.name, b.address));
    const panic = resolved.length > 0 && healthy.length === 0;
    const serving: BackendWeight[] = (panic ? resolved : healthy).map((b) => ({ key: b.address, weight: b.weight }));

    let table: Table | null = null;
    let moved: number | null = null;
    let counts = new Map<string, number>();
    if (serving.length > 0) {
      const inputs = `${size}|${serving.map((b) => `${b.key}=${b.weight}`).sort().join(',')}`;
      const hit = memo?.entries.get(vip.name);
      if (hit !== undefined && hit.inputs === inputs) {
        table = hit.table;
        counts = hit.counts;
        moved = 0;
      } else {
        // The successor of what the maps hold, or a fresh table (nothing held, or another size).
        const current = obs.currentTable(vip.name);
        table = tables.next(current ?? null, { size, backends: serving });
        if (current !== undefined && current.size === size) {
          const map = new Map(table.backends.map((b, i) => [b.key, i]));
          let m = 0;
          for (let s = 0; s < size; s++) if (map.get(current.backends[current.slots[s]!]!.key) !== table.slots[s]) m++;
          moved = m;
        }
        const perOwner = new Int32Array(table.backends.length);
        for (let s = 0; s < table.size; s++) perOwner[table.slots[s]!]!++;
        table.backends.forEach((b, i) => counts.set(b.key, perOwner[i]!));
        memo?.entries.set(vip.name, { inputs, table, counts });
      }
    } else {
      memo?.entries.delete(vip.name);
    }
    // Every configured backend keeps its entry, not only those with slots: a
    // drained (weight 0) or unhealthy backend has no new flows, but the flow
    // table's established flows still point at it and keep reaching it.
    for (const b of vip.backends) {
      const r = obs.mac(b.address);
      backends.set(b.address, { address: b.address, family: familyOf(b.address), mac: r?.ok === true ? r.mac : null });
    }

    status.push({
      name: vip.name,
      digest: table === null ? null : digestOf(table),
      tableSize: size,
      panic,
      moved,
      listed: table?.backends ?? [],
      backends: vip.backends.map((b) => {
        const r = obs.mac(b.address);
        const isHealthy = obs.healthy(vip.name, b.address);
        const reason =
          b.weight === 0 ? 'drained (weight 0)' : r === undefined ? 'MAC not resolved yet' : !r.ok ? r.reason : !isHealthy && !panic ? 'failed health checks' : null;
        return { address: b.address, weight: b.weight, healthy: isHealthy, resolved: r?.ok === true, reason, slots: counts.get(b.address) ?? 0 };
      }),
    });
    desiredVips.push({
      name: vip.name,
      keys: vip.ports.map((p) => ({ address: vip.address, port: p.port, protocol: p.protocol })),
      features: featuresOf(vip),
      table: table === null ? null : desiredTable(table),
    });
  }
  if (memo !== undefined) {
    const wanted = new Set(vips.map((v) => v.name));
    for (const name of memo.entries.keys()) if (!wanted.has(name)) memo.entries.delete(name);
  }
  return { desired: { vips: desiredVips, backends }, status };
}

/** A computed table as the plan takes it. */
export function desiredTable(table: Table): NonNullable<DesiredVip['table']> {
  return tableWithContent(table.size, table.backends.map((b) => b.key), digestOf(table), {
    slots: table.slots,
    ...(table.alternates === undefined ? {} : { alternates: table.alternates }),
    ...(table.secondHops === undefined ? {} : { secondHops: table.secondHops }),
  });
}

/** A desired table given by its slots (owner positions; every owner at weight 1), its digest computed: for tools and tests that write tables directly. */
export function tableOfSlots(size: number, owners: readonly string[], content: { slots: Uint32Array; alternates?: Uint32Array; secondHops?: Uint32Array }): NonNullable<DesiredVip['table']> {
  const digest = tableDigest({ size: size as Table['size'], backends: owners.map((key) => ({ key, weight: 1 })), ...content });
  return tableWithContent(size, owners, digest, content);
}

/** The table a VIP has now, rebuilt from the image's slots (owners by address, weights unknown = 1). */
export function tableFromImage(size: number, slots: Uint32Array, addressOf: (index: number) => string | undefined): Table | undefined {
  if (!isTableSize(size) || slots.length !== size) return undefined;
  const keys = new Set<string>();
  for (const i of new Set(slots)) {
    const a = addressOf(i);
    if (a === undefined) return undefined;
    keys.add(a);
  }
  const sorted = [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const position = new Map(sorted.map((k, i) => [k, i]));
  const byIndex = new Map<number, number>();
  for (const i of new Set(slots)) byIndex.set(i, position.get(addressOf(i)!)!);
  const out = new Uint32Array(size);
  for (let s = 0; s < size; s++) out[s] = byIndex.get(slots[s]!)!;
  return { size, backends: sorted.map((key) => ({ key, weight: 1 })), slots: out };
}
