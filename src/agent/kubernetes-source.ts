// kubernetes-source.ts: the desired datapath in Kubernetes mode. VIPs come
// from LoadBalancerVip objects, their tables from the VipTable shards the
// operator publishes: the agent never computes a table, it programs the
// newest whole generation whose assembled digest matches, so every node
// forwards a flow to the same backend. VIPs that are in Conflict or whose
// nodeSelector excludes this node are not programmed; a VIP without a
// published table is programmed without one (its traffic is dropped and
// counted). Health checks run here and are reported in the node's NodeReport;
// the operator, not the agent, takes unhealthy backends out (by quorum).
import type { BackendImage, DesiredDatapath, DesiredVip } from '../core/datapath-plan.js';
import { flagsOf, type VipStatus } from '../core/desired-state.js';
import { tableDigest } from '../core/digest.js';
import { canonicalIp } from '../core/net.js';
import { assembleShards, type TableShardSpec } from '../core/table-shards.js';
import type { Table } from '../core/maglev.js';
import type { Obj } from '../operator/k8s.js';
import type { DesiredSource } from './engine.js';
import type { HealthTarget } from './health-checker.js';

type Spec = Record<string, unknown>;

export interface KubeVip {
  readonly key: string; // namespace/name
  readonly address: string;
  readonly keys: { address: string; port: number; protocol: 'TCP' | 'UDP' }[];
  readonly mode: 'ipip' | 'l2dsr';
  readonly flags: number;
  readonly healthCheck: Spec | undefined;
  readonly firstPort: number | undefined;
  readonly published: { table: Table; generation: number; digest: string } | null;
  readonly problem: string | null;
}

/** The VIPs this node should program, from the informers' objects. */
export function kubeVips(
  vips: readonly Obj[],
  tables: readonly Obj[],
  nodeLabels: Readonly<Record<string, string>>,
  /** Assembled tables by VIP and shard resourceVersions: shards are inflated once per change. */
  cache: Map<string, { version: string; value: KubeVip['published']; problem: string | null }> = new Map(),
): KubeVip[] {
  const out: KubeVip[] = [];
  for (const v of vips) {
    const s = (v.spec ?? {}) as Spec;
    const conditions = (v.status?.conditions ?? []) as { type: string; status: string }[];
    if (conditions.some((c) => c.type === 'Conflict' && c.status === 'True')) continue;
    if (v.metadata?.deletionTimestamp !== undefined) continue;
    const selector = (s.nodeSelector ?? {}) as Record<string, string>;
    if (!Object.entries(selector).every(([k, val]) => nodeLabels[k] === val)) continue;
    const ns = v.metadata!.namespace!;
    const name = v.metadata!.name!;
    const address = canonicalIp(String(s.address));
    const ports = (s.ports ?? []) as Spec[];
    const mine = tables.filter((t) => t.metadata?.namespace === ns && (t.spec as Spec | undefined)?.vip === name);
    const version = mine.map((t) => `${t.metadata!.name}@${t.metadata!.resourceVersion}`).sort().join(',');
    const key = `${ns}/${name}`;
    let hit = cache.get(key);
    if (hit === undefined || hit.version !== version) {
      let value: KubeVip['published'] = null;
      let problem: string | null = null;
      try {
        const a = assembleShards(mine.map((t) => t.spec as unknown as TableShardSpec));
        if (a !== null) value = { table: a.table, generation: a.generation, digest: a.digest };
      } catch (e) {
        problem = (e as Error).message;
      }
      hit = { version, value, problem };
      cache.set(key, hit);
    }
    const published = hit.value;
    const problem = hit.problem;
    const hashing = (s.hashing ?? {}) as Spec;
    out.push({
      key: `${ns}/${name}`,
      address,
      keys: ports.map((p) => ({ address, port: p.allPorts === true ? 0 : Number(p.port), protocol: p.protocol === 'UDP' ? 'UDP' : 'TCP' })),
      mode: s.mode === 'l2dsr' ? 'l2dsr' : 'ipip',
      flags: flagsOf({ mode: s.mode === 'l2dsr' ? 'l2dsr' : 'ipip', affinity: hashing.affinity === 'SourceIP' ? 'sourceIp' : 'fiveTuple', flowTable: ((s.flowTable ?? {}) as Spec).enabled === true }),
      healthCheck: s.healthCheck as Spec | undefined,
      firstPort: ports.map((p) => Number(p.port)).find((p) => Number.isInteger(p) && p > 0),
      published,
      problem,
    });
  }
  return out;
}

export class KubernetesSource implements DesiredSource {
  readonly vips: KubeVip[];

  constructor(vips: KubeVip[]) {
    this.vips = vips;
  }

  addresses(): Map<string, { onLink: boolean }> {
    const out = new Map<string, { onLink: boolean }>();
    for (const v of this.vips) {
      for (const b of v.published?.table.backends ?? []) {
        out.set(b.key, { onLink: (out.get(b.key)?.onLink ?? false) || v.mode === 'l2dsr' });
      }
    }
    return out;
  }

  compute(observed: Parameters<DesiredSource['compute']>[0]): ReturnType<DesiredSource['compute']> {
    const backends = new Map<string, BackendImage>();
    const vips: DesiredVip[] = [];
    const status: VipStatus[] = [];
    for (const v of this.vips) {
      const t = v.published?.table ?? null;
      if (t !== null) {
        for (const b of t.backends) {
          const r = observed.mac(b.key);
          backends.set(b.key, { address: b.key, family: b.key.includes(':') ? 6 : 4, mac: r?.ok === true ? r.mac : null });
        }
      }
      vips.push({ name: v.key, keys: v.keys, flags: v.flags, table: t === null ? null : { size: t.size, owners: t.backends.map((b) => b.key), slots: t.slots } });
      const counts = new Map<string, number>();
      if (t !== null) for (let s = 0; s < t.size; s++) counts.set(t.backends[t.slots[s]!]!.key, (counts.get(t.backends[t.slots[s]!]!.key) ?? 0) + 1);
      status.push({
        name: v.key,
        digest: t === null ? null : (v.published?.digest ?? tableDigest(t)),
        tableSize: t?.size ?? 0,
        panic: false,
        moved: null,
        backends: (t?.backends ?? []).map((b) => {
          const r = observed.mac(b.key);
          return { address: b.key, weight: b.weight, healthy: true, resolved: r?.ok === true, reason: r === undefined ? 'MAC not resolved yet' : r.ok ? null : r.reason, slots: counts.get(b.key) ?? 0 };
        }),
      });
    }
    const desired: DesiredDatapath = { vips, backends };
    return { desired, status };
  }

  keysOf(vip: string): readonly string[] {
    const v = this.vips.find((x) => x.key === vip);
    return v === undefined ? [] : v.keys.map((k) => `${k.address}|${k.port}|${k.protocol}`);
  }

  healthTargets(): HealthTarget[] {
    const out: HealthTarget[] = [];
    for (const v of this.vips) {
      const hc = v.healthCheck;
      if (hc === undefined || v.published === null) continue;
      const port = Number(hc.port ?? v.firstPort);
      if (!Number.isInteger(port) || port <= 0) continue;
      // Weight-0 backends too: the operator keeps unhealthy ones listed so nodes keep probing them.
      for (const b of v.published.table.backends) {
        out.push({
          key: `${v.key}|${b.key}`,
          type: hc.type === 'HTTP' ? 'http' : 'tcp',
          address: b.key,
          port,
          path: String(hc.path ?? '/'),
          timeoutMs: Number(hc.timeoutMilliseconds ?? 80),
          intervalMs: Number(hc.intervalMilliseconds ?? 100),
          healthyThreshold: Number(hc.healthyThreshold ?? 2),
          unhealthyThreshold: Number(hc.unhealthyThreshold ?? 2),
        });
      }
    }
    return out;
  }
}
