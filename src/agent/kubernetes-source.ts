// kubernetes-source.ts: the desired datapath in Kubernetes mode. VIPs come
// from LoadBalancerVip objects, their tables from the VipTable shards the
// operator publishes (shared tables listing their VIPs, or the earlier
// per-VIP shards: api/table-index.ts): the agent never computes a table, it
// programs the newest whole generation whose assembled digest matches, so every node
// forwards a flow to the same backend. While no generation is whole (a new one
// half written, or an inconsistent one), it keeps the last whole one it
// verified. Two VIPs claiming the same (address, protocol, port): the agent
// applies the operator's rule itself (older claim wins; core/claims.ts), so a
// duplicate never reaches the datapath, whatever the status says and even
// while the operator is down. VIPs whose nodeSelector excludes this node are
// not programmed; a VIP without a published table, or with the empty one, is
// programmed without one (its traffic is dropped and counted). Health checks
// run here and are reported in the node's NodeReport; the operator takes
// unhealthy backends out of the table (by quorum), but the node routes around
// a backend at once (core/down.ts) when its own probes fail it or when the
// VIP's Service lists it as not ready (core/endpoints.ts). Objects are read through
// src/api's parsers, defaults applied; one that does not parse is left out.
import { candidateShards, parseVip, TableIndex, vipClaimOf, type VipHealthCheck } from '../api/index.js';
import { findConflicts } from '../core/claims.js';
import { endpointsOut, type EndpointSliceObject } from '../core/endpoints.js';
import { downAddresses, type FailoverModel } from '../core/failover-model.js';
import type { BackendImage, DesiredDatapath, DesiredVip, TableContent, VipFeatures } from '../core/datapath-plan.js';
import type { BackendWeight } from '../core/backends.js';
import { featuresOf, type VipStatus } from '../core/desired-state.js';
import { canonicalIp } from '../core/net.js';
import { assembleShards, newestWhole } from '../core/table-shards.js';
import { canonicalBackends } from '../core/backends.js';
import { slotCounts } from '../core/maglev.js';
import type { Obj } from '../kube/k8s.js';
import type { DesiredSource } from './engine.js';
import type { HealthTarget } from './health-checker.js';
import { SharedProbes } from './probes.js';

export interface KubeVip {
  readonly key: string; // namespace/name
  readonly address: string;
  readonly keys: { address: string; port: number; protocol: 'TCP' | 'UDP' }[];
  readonly features: VipFeatures;
  /** With its defaults (src/api/defaults.ts) applied; undefined: no health check. */
  readonly healthCheck: VipHealthCheck | undefined;
  readonly firstPort: number | undefined;
  /** The Service whose EndpointSlices give (some of) its backends (backends.service.name), if any. */
  readonly service: string | undefined;
  readonly published: PublishedTable | null;
  readonly problem: string | null;
}

/**
 * The newest whole generation of a VIP's table. Its slots are not held:
 * `content` decodes them from the shards (immutable, in the informer's cache
 * anyway) when the table is to be written, so a thousand VIPs of 65537 slots
 * cost the agent no table copies. The first `content` also checks the digest
 * (the table is decoded once, not once to check and again to write): a
 * generation whose slots do not match its digest is then set aside for good,
 * the VIP goes back to the last generation that did match (`onBad` asks for
 * a new source), and the pass that asked fails before writing it. What
 * `content` returns is valid until the next `content` of any published table
 * (reused arrays): the map writer packs it at once.
 */
export interface PublishedTable {
  readonly size: number;
  readonly backends: readonly BackendWeight[];
  /** The backends' addresses, in table order (what the datapath's owners are). */
  readonly owners: readonly string[];
  readonly generation: number;
  readonly digest: string;
  /**
   * Slots per backend address: known once the slots of this digest were
   * decoded and checked, for this VIP or another (a shared table is written,
   * and so decoded, once); empty before.
   */
  readonly counts: ReadonlyMap<string, number>;
  readonly content: () => TableContent;
}

/** Per VIP: the tables last read (their signatures), the generation to program, the last one whose digest was checked, and those that failed it. */
export interface PublishedEntry {
  uid: string;
  version: string;
  lastGood: PublishedTable | null;
  verified: PublishedTable | null;
  problem: string | null;
  readonly bad: Set<number>;
}

export type PublishedCache = Map<string, PublishedEntry>;

/** Slots per backend of each table decoded and checked, by digest: VIPs sharing a table share its counts. */
const countsByDigest = new Map<string, ReadonlyMap<string, number>>();
const COUNTS_HELD = 8192;

/** A whole generation (newestWhole) as a PublishedTable of `entry`, checked on first decode. */
function published(whole: NonNullable<ReturnType<typeof newestWhole>>, entry: PublishedEntry, onBad: () => void): PublishedTable {
  const { generation, shards } = whole;
  const counts = new Map<string, number>();
  const backends = whole.size === 0 ? [] : canonicalBackends(whole.backends);
  const table: PublishedTable = {
    size: whole.size,
    backends,
    owners: backends.map((b) => b.key),
    generation,
    digest: whole.digest,
    get counts() {
      return counts.size > 0 ? counts : (countsByDigest.get(whole.digest) ?? counts);
    },
    content: () => {
      const check = entry.verified !== table;
      let a: ReturnType<typeof assembleShards>;
      try {
        a = assembleShards(shards, { verify: check, scratch: true });
        if (a === null || a.generation !== generation) throw new Error(`generation ${generation} is no longer whole`);
      } catch (e) {
        entry.bad.add(generation);
        entry.problem = (e as Error).message;
        if (entry.lastGood === table) entry.lastGood = entry.verified;
        onBad();
        throw e;
      }
      if (check) {
        entry.verified = table;
        if ([...entry.bad].every((g) => g < generation)) entry.problem = null;
        const perOwner = slotCounts(a.table);
        a.table.backends.forEach((b, i) => counts.set(b.key, perOwner[i]!));
        if (countsByDigest.size >= COUNTS_HELD) countsByDigest.clear();
        countsByDigest.set(whole.digest, counts);
      }
      return {
        slots: a.table.slots,
        ...(a.table.alternates === undefined ? {} : { alternates: a.table.alternates }),
        ...(a.table.secondHops === undefined ? {} : { secondHops: a.table.secondHops }),
      };
    },
  };
  return table;
}

/**
 * The VIPs this node should program, from the informers' objects, older
 * claims first. `onBad`: a generation failed its digest when decoded for
 * writing (see PublishedTable): call kubeVips again.
 */
export function kubeVips(vips: readonly Obj[], tables: readonly Obj[], nodeLabels: Readonly<Record<string, string>>, cache: PublishedCache = new Map(), onBad: () => void = () => undefined): KubeVip[] {
  const live = vips.flatMap((o) => {
    const v = parseVip(o);
    return v.ok && v.value.metadata.deletionTimestamp === undefined ? [v.value] : [];
  });
  const claims = live.map(vipClaimOf);
  const conflicts = findConflicts(claims);
  const order = live.map((v, i) => ({ v, claim: claims[i]! })).sort((a, b) => (a.claim.creationTimestamp < b.claim.creationTimestamp ? -1 : a.claim.creationTimestamp > b.claim.creationTimestamp ? 1 : a.claim.id < b.claim.id ? -1 : 1));
  // Each VIP's tables, read by reference only (digest, shard names, generations): decoded when they changed.
  const index = TableIndex.of(tables);
  const out: KubeVip[] = [];
  const seen = new Set<string>();
  for (const { v, claim } of order) {
    const s = v.spec;
    if (!Object.entries(s.nodeSelector ?? {}).every(([k, val]) => nodeLabels[k] === val)) continue;
    // The older claim wins, whatever the VIP's status says (it may lag, or the operator may be down).
    if (conflicts.has(claim.id)) continue;
    let address: string;
    try {
      address = canonicalIp(s.address);
    } catch {
      continue; // the CRD's schema refuses these; never program what cannot be parsed
    }
    const key = `${v.metadata.namespace}/${v.metadata.name}`;
    seen.add(key);
    const uid = v.metadata.uid ?? '';
    const candidates = index.candidates(v.metadata.namespace, v.metadata.name, uid);
    const version = candidates.map((c) => c.signature).join('|');
    let hit = cache.get(key);
    if (hit !== undefined && hit.uid !== uid) hit = undefined; // deleted and created again: nothing carries over
    if (hit === undefined || hit.version !== version) {
      const entry: PublishedEntry = hit ?? { uid, version, lastGood: null, verified: null, problem: null, bad: new Set() };
      entry.version = version;
      try {
        const newest = candidates.find((c) => c.whole && !entry.bad.has(c.generation));
        const whole = newest === undefined ? null : newestWhole(candidateShards(newest, key));
        // No whole generation (a new one half written): keep the last whole one.
        if (whole !== null && whole.generation !== entry.lastGood?.generation) {
          entry.lastGood = published(whole, entry, onBad);
          // The empty table has no slots to decode: checked here.
          if (whole.size === 0) entry.lastGood.content();
        }
        if (entry.bad.size === 0) entry.problem = null;
      } catch (e) {
        entry.problem = (e as Error).message;
      }
      hit = entry;
      cache.set(key, hit);
    }
    out.push({
      key,
      address,
      // The CRD's CEL rule makes every entry carry exactly one of port and allPorts.
      keys: s.ports.map((p) => ({ address, port: p.allPorts === true ? 0 : Number(p.port), protocol: p.protocol })),
      features: featuresOf({ mode: s.mode, affinity: s.hashing.affinity === 'SourceIP' ? 'sourceIp' : 'fiveTuple', flowTable: s.flowTable?.enabled === true }),
      healthCheck: s.healthCheck,
      firstPort: s.ports.map((p) => p.port).find((p) => p !== undefined && p > 0),
      service: s.backends?.service?.name,
      published: hit.lastGood,
      problem: hit.problem,
    });
  }
  for (const key of cache.keys()) if (!seen.has(key)) cache.delete(key);
  return out;
}

export class KubernetesSource implements DesiredSource {
  readonly vips: KubeVip[];
  /** What this node's probes find for a "vip|address" pair; null: not probed. */
  readonly #probe: (probe: string) => boolean | null;
  readonly #probes = new SharedProbes();
  /** Per VIP over a Service: the addresses its EndpointSlices list only as out (core/endpoints.ts). */
  readonly #endpointsOut = new Map<string, Set<string>>();
  readonly #routeAround: boolean;
  #failover: Pick<FailoverModel, 'enabled' | 'vips'> | undefined;
  /** The distinct probes of the failover model, and the last down set with what they found then. */
  #modelProbes: string[] | undefined;
  #lastDown: { found: string; down: ReadonlySet<string> } | undefined;
  /** VIP key -> its datapath keys ("address|port|protocol"). */
  readonly #keys: Map<string, string[]>;

  /**
   * `probe`: what a probe (by its key, probes.ts) finds now; null: not probed yet.
   * `slices`: the EndpointSlices of the Services the VIPs reference, from a synced informer.
   * `routeAround`: false leaves taking backends out to the operator's tables alone.
   */
  constructor(vips: KubeVip[], probe: (probe: string) => boolean | null = () => null, slices: readonly EndpointSliceObject[] = [], routeAround = true) {
    this.vips = vips;
    this.#probe = probe;
    this.#routeAround = routeAround;
    this.#keys = new Map(vips.map((v) => [v.key, v.keys.map((k) => `${k.address}|${k.port}|${k.protocol}`)]));
    for (const v of vips) if (v.service !== undefined) this.#endpointsOut.set(v.key, endpointsOut(slices, v.key.split('/')[0]!, v.service));
    for (const v of vips) {
      const hc = v.healthCheck;
      if (hc === undefined || v.published === null) continue;
      const port = hc.port ?? v.firstPort;
      if (port === undefined) continue;
      // Weight-0 backends too: the operator keeps unhealthy ones listed so nodes keep probing them.
      for (const b of v.published.backends) {
        this.#probes.add(v.key, { type: hc.type === 'HTTP' ? 'http' : 'tcp', address: b.key, port, path: hc.path, timeoutMs: hc.timeoutMilliseconds, intervalMs: hc.intervalMilliseconds, healthyThreshold: hc.healthyThreshold, unhealthyThreshold: hc.unhealthyThreshold });
      }
    }
  }

  addresses(): Map<string, { onLink: boolean }> {
    const out = new Map<string, { onLink: boolean }>();
    for (const v of this.vips) {
      for (const b of v.published?.backends ?? []) {
        out.set(b.key, { onLink: (out.get(b.key)?.onLink ?? false) || v.features.mode === 'l2dsr' });
      }
    }
    return out;
  }

  compute(observed: Parameters<DesiredSource['compute']>[0]): ReturnType<DesiredSource['compute']> {
    const backends = new Map<string, BackendImage>();
    const vips: DesiredVip[] = [];
    const status: VipStatus[] = [];
    for (const v of this.vips) {
      const published = v.published;
      // The empty table (no backend takes new flows) is programmed as no table: packets dropped, counted.
      const t = published === null || published.size === 0 ? null : published;
      if (t !== null) {
        for (const b of t.backends) {
          const r = observed.mac(b.key);
          backends.set(b.key, { address: b.key, family: b.key.includes(':') ? 6 : 4, mac: r?.ok === true ? r.mac : null });
        }
      }
      vips.push({
        name: v.key,
        keys: v.keys,
        features: v.features,
        table: t === null ? null : { size: t.size, owners: t.owners, digest: t.digest, content: t.content },
      });
      status.push({
        name: v.key,
        digest: published === null ? null : published.digest,
        tableSize: t?.size ?? 0,
        // Failing open is the operator's decision here (by quorum), not this node's.
        panic: null,
        moved: null,
        listed: t?.backends ?? [],
        backends: (t?.backends ?? []).map((b) => {
          const r = observed.mac(b.key);
          const healthy = this.#measured(v.key, b.key);
          const out = this.#endpointOut(v.key, b.key);
          const reason = r === undefined ? 'MAC not resolved yet' : !r.ok ? r.reason : healthy === false ? 'failed health checks' : out ? 'endpoint not ready' : null;
          // Read when the status is: a table's counts are known once the pass (or another VIP's) decoded it.
          return {
            address: b.key,
            weight: b.weight,
            healthy,
            resolved: r?.ok === true,
            reason,
            get slots() {
              return t?.counts.get(b.key) ?? 0;
            },
          };
        }),
      });
    }
    const desired: DesiredDatapath = { vips, backends, down: this.down() };
    return { desired, status };
  }

  /**
   * The backends to route around: the node's own probes, and endpoints turning
   * not ready, take a backend out at once (one map write), before the
   * operator's next table. Cheap (no table is read): the agent's fast path.
   */
  down(): ReadonlySet<string> {
    // The model is fixed for this source: the answer changes only with what its probes find.
    const model = this.failover();
    this.#modelProbes ??= [...new Set(model.vips.flatMap((v) => v.serving.flatMap((s) => (s.probe === null ? [] : [s.probe]))))];
    const found = this.#modelProbes.map((p) => String(this.#probe(p))).join();
    if (this.#lastDown?.found !== found) this.#lastDown = { found, down: downAddresses(model, this.#probe) };
    return this.#lastDown.down;
  }

  keysOf(vip: string): readonly string[] {
    return this.#keys.get(vip) ?? [];
  }

  /** What this node's probe of `vip`'s backend at `address` finds; null: not probed. */
  #measured(vip: string, address: string): boolean | null {
    const probe = this.#probes.probeOf(vip, address);
    return probe === undefined ? null : this.#probe(probe);
  }

  /** Per VIP, the backends it lists (idle: weight 0) with the probe answering for each and whether its endpoint is out (fixed for this source: built once). */
  failover(): Pick<FailoverModel, 'enabled' | 'vips'> {
    return (this.#failover ??= {
      enabled: this.#routeAround,
      vips: this.vips.map((v) => ({
        name: v.key,
        serving: (v.published?.backends ?? []).map((b) => ({ address: b.key, probe: this.#probes.probeOf(v.key, b.key) ?? null, out: this.#endpointOut(v.key, b.key), ...(b.weight > 0 ? {} : { idle: true }) })),
      })),
    });
  }

  /** Whether `vip`'s Service lists the endpoint at `address` as out (not ready, not draining). */
  #endpointOut(vip: string, address: string): boolean {
    return this.#endpointsOut.get(vip)?.has(address) ?? false;
  }

  /** Probes to run: one per distinct check of the backends of every VIP with a health check (probes.ts). */
  healthTargets(): HealthTarget[] {
    return this.#probes.targets();
  }

  /** The probe (its key) that answers for `vip`'s backend at `address`, if any. */
  probeOf(vip: string, address: string): string | undefined {
    return this.#probes.probeOf(vip, address);
  }
}
