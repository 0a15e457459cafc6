// reconciler.ts: one pass for one LoadBalancerVip, level-triggered: read the
// informers' caches, let core/vip-decision decide, then converge the world:
// finalizer, VipTable shards of the decided table (a new generation beside
// the old, which goes once the new one is whole), one status write when the
// status differs (after a publication, once its rollout settles), Events on
// condition flips only. Tables come from a memo shared by every VIP (equal
// requests, equal tables), and a VIP's published shards are decoded once per
// set of shard objects. Only fresh NodeReports
// count (node-liveness.ts). The xdplb.io objects are read through src/api's
// parsers (defaults applied); one that does not parse is logged and left out.
import type { Logger } from 'pino';
import { API_VERSION, FINALIZER, PLURALS, VIP_LABEL } from '../api/coordinates.js';
import {
  backendObjectOf,
  nodeViewOf,
  parseBackend,
  parseNodeReport,
  parseVip,
  parseVipStatus,
  parseVipTable,
  parseVipTableRef,
  shardOf,
  vipCheckOf,
  vipObjectOf,
  writtenVipStatus,
  type LoadBalancerVip,
  type Parsed,
  type VipStatus,
} from '../api/index.js';
import { findCondition, jsonEqual, transitions } from '../core/conditions.js';
import { assembleShards, encodeShards, shardObjectName, type TableShardSpec } from '../core/table-shards.js';
import type { Table } from '../core/maglev.js';
import { knownDigest, TableMemo } from '../core/table-memo.js';
import { decideVip, selectorMatches, type NodeView, type PublishedTable } from '../core/vip-decision.js';
import { parseEndpointSlice } from '../kube/endpoint-slices.js';
import type { Cached, Kube, Obj } from '../kube/k8s.js';

export interface Caches {
  readonly vips: Cached<Obj>;
  readonly backends: Cached<Obj>;
  readonly endpointSlices: Cached<Obj>;
  readonly tables: Cached<Obj>;
  readonly reports: Cached<Obj>;
  readonly nodes: Cached<Obj>;
}

export interface ReconcilerDeps {
  readonly kube: Kube;
  readonly caches: Caches;
  /** The namespace holding NodeReports (the operator's own). */
  readonly reportNamespace: string;
  readonly log: Logger;
  readonly now: () => Date;
  /** Whether a NodeReport (by name) is fresh: stale reports' nodes neither vote nor count as expected. */
  readonly reportFresh: (name: string) => boolean;
  /** Whether the EndpointSlices of a Service (by name) are watched and synced: until then a VIP over it is not decided. */
  readonly serviceWatched: (name: string) => boolean;
  /** A new table generation is published (every shard written). */
  readonly published?: () => void;
  /** Reconcile this VIP again after `ms` (a status write waiting for a rollout to settle). */
  readonly requeueAfter?: (key: string, ms: number) => void;
}

/**
 * How long after publishing a generation the VIP's status waits for every
 * node to report it programmed: nodes program within about a second, and
 * one status write then says so, instead of one per node reporting. Longer
 * than an agent's widest report spacing under load (half its 10 s report
 * interval, core/report-pace.ts) plus the settle: a busy API server slows
 * the reports, not the status write count. The write goes as soon as every
 * node has reported; a rollout slower than this is written as it stands
 * (NodesPending).
 */
export const ROLLOUT_SETTLE_MS = 8000;

/**
 * How long a reconcile waits for the informer to show the shards it just
 * created (controller-runtime's "expectations"): past this, the shards are
 * taken as lost and the VIP is decided from what the cache holds. And how
 * soon a reconcile that waited looks again, should the add event be missed.
 */
const EXPECTATION_TIMEOUT_MS = 30_000;
const EXPECTATION_RETRY_MS = 1000;

/** The values that parse; the others are logged and left out (at debug: every pass meets them again). */
function parsed<T>(results: readonly Parsed<T>[], log: Logger, kind: string): T[] {
  const out: T[] = [];
  for (const r of results) {
    if (r.ok) out.push(r.value);
    else log.debug({ object: r.key, problem: r.problem }, `Left out ${kind} that does not parse`);
  }
  return out;
}

/** The VIPs of the cache that parse (a VIP that does not is left out by its own reconcile, and logged there). */
function parsedVips(caches: Caches): LoadBalancerVip[] {
  return caches.vips.list().flatMap((o) => {
    const v = parseVip(o);
    return v.ok ? [v.value] : [];
  });
}

/** Keys of the VIPs an object's change may affect (informer callbacks enqueue these). */
export function affectedVips(caches: Caches, kind: 'vip' | 'backend' | 'slice' | 'table' | 'report' | 'node', o: Obj): string[] {
  const ns = o.metadata?.namespace;
  switch (kind) {
    case 'vip':
      return [`${ns}/${o.metadata!.name}`];
    case 'table': {
      const t = parseVipTableRef(o);
      return [`${ns}/${t.ok ? t.value.spec.vip : String(o.metadata?.labels?.[VIP_LABEL])}`];
    }
    case 'backend':
      return parsedVips(caches).filter((v) => v.metadata.namespace === ns && selectorMatches(v.spec.backends?.selector, o.metadata!.labels ?? {})).map((v) => `${ns}/${v.metadata.name}`);
    case 'slice': {
      const svc = o.metadata?.labels?.['kubernetes.io/service-name'];
      return parsedVips(caches).filter((v) => v.metadata.namespace === ns && v.spec.backends?.service?.name === svc).map((v) => `${ns}/${v.metadata.name}`);
    }
    case 'report':
    case 'node':
      return caches.vips.list().map((v) => `${v.metadata!.namespace}/${v.metadata!.name}`);
  }
}

export class Reconciler {
  readonly #d: ReconcilerDeps;
  /** Per VIP key: the backend addresses of its last decision (a node's word on one of them concerns it). */
  readonly #backendsOf = new Map<string, ReadonlySet<string>>();
  /** Tables computed for one VIP, answered from here for every other VIP over the same backends. */
  readonly #tables = new TableMemo();
  /**
   * Per VIP key: its published table as last assembled, and the shard
   * objects (name and resourceVersion) it came from. A generation is
   * immutable, so the same shards assemble to the same table: they are
   * decoded and verified once, not on every reconcile.
   */
  readonly #published = new Map<string, { readonly from: string; readonly table: PublishedTable | null }>();
  /** Per VIP key: when (performance.now()) this operator last published a generation of it. */
  readonly #publishedAt = new Map<string, number>();
  /** Per VIP key: the shards its last publication created, until the informer shows them (or the expectation times out). */
  readonly #expected = new Map<string, { readonly names: ReadonlySet<string>; readonly until: number }>();
  /** Shard object names by VIP key ("namespace/vip"), from the VipTable informer's events (the operator rebuilds it before it reconciles). */
  readonly #shardNames = new Map<string, Set<string>>();

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
  }

  /**
   * A VipTable was added, changed or removed (the informer's events): the
   * index of shard names by VIP follows, so a reconcile reads its own shards
   * instead of every VipTable (two thousand at a thousand VIPs).
   */
  noteTable(o: Obj, gone: boolean): void {
    const namespace = o.metadata?.namespace;
    const name = o.metadata?.name;
    const t = parseVipTableRef(o);
    if (namespace === undefined || name === undefined || !t.ok) return;
    const key = `${namespace}/${t.value.spec.vip}`;
    const names = this.#shardNames.get(key) ?? new Set<string>();
    if (gone) names.delete(name);
    else names.add(name);
    if (names.size === 0) this.#shardNames.delete(key);
    else this.#shardNames.set(key, names);
  }

  /** Rebuilds the shard index from the informer's whole cache (on every resync and watch restart: level-triggered). */
  indexTables(): void {
    this.#shardNames.clear();
    for (const o of this.#d.caches.tables.list()) this.noteTable(o, false);
  }

  /** The VipTables of one VIP, as the informer holds them now. */
  #tablesOf(namespace: string, vip: string): readonly Obj[] {
    const out: Obj[] = [];
    for (const name of this.#shardNames.get(`${namespace}/${vip}`) ?? []) {
      const o = this.#d.caches.tables.get(name, namespace);
      if (o !== undefined) out.push(o);
    }
    return out;
  }

  /** The VIPs whose last decision listed one of these backend addresses. */
  vipsWithBackends(addresses: ReadonlySet<string>): string[] {
    if (addresses.size === 0) return [];
    const out: string[] = [];
    for (const [vip, backends] of this.#backendsOf) for (const a of addresses) if (backends.has(a)) {
      out.push(vip);
      break;
    }
    return out;
  }

  /**
   * The newest whole generation among a VIP's shards, decoded and its digest
   * checked once per set of shard objects; null when none is whole, or when
   * it is inconsistent (logged once: a fresh table is published over it).
   * Equal tables of different VIPs are held once (the memo interns them).
   */
  #publishedOf(key: string, shards: readonly { object: Obj; name: string }[], log: Logger): PublishedTable | null {
    const from = shards.map((s) => `${s.name}@${s.object.metadata!.resourceVersion ?? ''}`).sort().join(',');
    const cached = this.#published.get(key);
    if (cached !== undefined && cached.from === from) return cached.table;
    let table: PublishedTable | null = null;
    try {
      const decoded: TableShardSpec[] = [];
      for (const s of shards.map((t) => parseVipTable(t.object))) {
        if (!s.ok) throw new Error(`VipTable ${s.key} does not parse: ${s.problem}`);
        decoded.push(shardOf(s.value));
      }
      // Decoded into reused arrays; copied only when no other VIP holds this very table.
      const assembled = assembleShards(decoded, { scratch: true });
      if (assembled !== null) {
        const scratch = assembled.table;
        const held =
          this.#tables.held(assembled.digest) ??
          this.#tables.intern(copyTable(scratch, assembled.digest));
        table = { generation: assembled.generation, table: held };
      }
    } catch (e) {
      log.warn({ err: e }, 'Published table is inconsistent; publishing a fresh one');
    }
    this.#published.set(key, { from, table });
    return table;
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const { caches, kube } = this.#d;
    const log = this.#d.log.child({ kind: 'LoadBalancerVip', namespace, name });
    const obj = caches.vips.get(name, namespace);
    // This VIP's shards, by name and generation; decoded only to assemble the published table.
    const shards: { object: Obj; name: string; generation: number }[] = [];
    for (const object of this.#tablesOf(namespace, name)) {
      const t = parseVipTableRef(object);
      if (!t.ok) log.debug({ object: t.key, problem: t.problem }, 'Left out VipTable that does not parse');
      else if (t.value.spec.vip === name) shards.push({ object, name: t.value.metadata.name, generation: t.value.spec.generation });
    }

    if (obj === undefined) {
      this.#backendsOf.delete(key);
      this.#published.delete(key);
      this.#publishedAt.delete(key);
      this.#expected.delete(key);
      // Gone (its finalizer already ran, or it never had one): its shards go too.
      for (const s of shards) await kube.delete(PLURALS.tables, namespace, s.name);
      return;
    }
    const finalizers = obj.metadata!.finalizers ?? [];
    if (obj.metadata!.deletionTimestamp !== undefined) {
      if (!finalizers.includes(FINALIZER)) return;
      for (const s of shards) await kube.delete(PLURALS.tables, namespace, s.name);
      await kube.setFinalizers(PLURALS.vips, namespace, name, finalizers.filter((f) => f !== FINALIZER), obj.metadata!.resourceVersion!);
      log.info('Removed the published table and the finalizer of deleted VIP');
      return;
    }
    if (!finalizers.includes(FINALIZER)) {
      await kube.setFinalizers(PLURALS.vips, namespace, name, [...finalizers, FINALIZER], obj.metadata!.resourceVersion!);
      return; // the update re-queues this VIP
    }

    // Shards this operator created that the informer has not shown yet: deciding now would
    // find the previous generation and publish this one again. Their add event queues the VIP.
    const expected = this.#expected.get(key);
    if (expected !== undefined) {
      const seen = this.#shardNames.get(key);
      if ([...expected.names].every((n) => seen?.has(n) === true) || performance.now() > expected.until) this.#expected.delete(key);
      else {
        log.debug({ shards: [...expected.names] }, 'Waiting for the informer to show the shards just published');
        this.#d.requeueAfter?.(key, EXPECTATION_RETRY_MS);
        return;
      }
    }
    const parsedVip = parseVip(obj);
    if (!parsedVip.ok) {
      // The API server's schema refuses such a VIP; one stored under an older schema waits for a fix.
      log.warn({ problem: parsedVip.problem }, 'Left out VIP that does not parse');
      return;
    }
    // A VIP over a Service the slice informer does not follow yet would look
    // backend-less: wait for the informer (its swap queues every VIP again).
    const service = parsedVip.value.spec.backends?.service?.name;
    if (service !== undefined && !this.#d.serviceWatched(service)) {
      log.debug({ service }, 'Waiting for the EndpointSlices of the Service of VIP');
      return;
    }
    const status = parseVipStatus(obj);
    if (!status.ok) log.warn({ problem: status.problem }, 'Status of VIP does not parse; deciding as if it had none');
    const vip = vipObjectOf(parsedVip.value, status.ok ? status.value : undefined);
    const nodeLabels = new Map(caches.nodes.list().map((n) => [n.metadata!.name!, n.metadata!.labels ?? {}]));
    const check = vipCheckOf(parsedVip.value);
    const nodes: NodeView[] = [];
    for (const o of caches.reports.list(this.#d.reportNamespace)) {
      if (!this.#d.reportFresh(o.metadata!.name!)) continue;
      const r = parseNodeReport(o);
      if (!r.ok) {
        log.warn({ report: r.key, problem: r.problem }, 'Left out NodeReport that does not parse');
        continue;
      }
      const labels = nodeLabels.get(r.value.spec.node) ?? {};
      if (vip.spec.nodeSelector !== undefined && !Object.entries(vip.spec.nodeSelector).every(([k, v]) => labels[k] === v)) continue;
      nodes.push(nodeViewOf(r.value, { namespace, name, check }));
    }
    const published = this.#publishedOf(key, shards, log);

    const decision = decideVip({
      vip,
      // A VIP being deleted no longer holds its claims (agents stop programming it at once too).
      allVips: parsedVips(caches)
        .filter((v) => v.metadata.deletionTimestamp === undefined)
        .map((v) => vipObjectOf(v)),
      backends: parsed(caches.backends.list().map(parseBackend), log, 'Backend').map(backendObjectOf),
      endpointSlices: caches.endpointSlices.list().map(parseEndpointSlice),
      nodes,
      published,
      highestGeneration: Math.max(0, ...shards.map((s) => s.generation)),
      now: this.#d.now(),
      tables: this.#tables,
    });

    this.#backendsOf.set(key, new Set(decision.backends.map((b) => b.address)));

    // Publish: a new generation is written beside the published one (never
    // over it), and older or unfinished generations are removed only once the
    // current one is whole, so an agent always finds a complete generation.
    if (decision.table !== null) {
      let current = published?.generation ?? null;
      if (published === null || decision.generation !== published.generation) {
        const owner = { apiVersion: API_VERSION, kind: 'LoadBalancerVip', name, uid: obj.metadata!.uid!, controller: true, blockOwnerDeletion: true };
        const created = new Set<string>();
        for (const spec of encodeShards(name, decision.generation, decision.table)) {
          const shardName = shardObjectName(name, spec.generation, spec.shard.index);
          await kube.createImmutable(PLURALS.tables, namespace, {
            apiVersion: API_VERSION,
            kind: 'VipTable',
            metadata: { name: shardName, namespace, labels: { [VIP_LABEL]: name }, ownerReferences: [owner] },
            spec: spec as unknown as Record<string, unknown>,
          });
          created.add(shardName);
        }
        this.#expected.set(key, { names: created, until: performance.now() + EXPECTATION_TIMEOUT_MS });
        current = decision.generation;
        this.#publishedAt.set(key, performance.now());
        this.#d.published?.();
        log.info({ generation: decision.generation, digest: decision.digest, size: decision.table.size, backends: decision.backends.length }, 'Published table of VIP');
      }
      await Promise.all(shards.filter((s) => s.generation !== current).map((s) => kube.delete(PLURALS.tables, namespace, s.name)));
    } else if (shards.length > 0 && decision.conflict !== null) {
      for (const s of shards) await kube.delete(PLURALS.tables, namespace, s.name);
    }

    // Status: one write, and none when nothing changed. While a generation
    // this operator just published rolls out, the write waits (up to
    // ROLLOUT_SETTLE_MS) for every node to program it, so a change costs one
    // status write however many nodes report. A VIP with no status yet gets
    // one at once.
    const next = writtenVipStatus(decision.status);
    const sinceStart = performance.now() - (this.#publishedAt.get(key) ?? -Infinity);
    const pending = decision.status.nodes.programmed < decision.status.nodes.expected && status.ok && status.value.table !== undefined;
    if (pending && sinceStart < ROLLOUT_SETTLE_MS && this.#d.requeueAfter !== undefined) {
      this.#d.requeueAfter(key, Math.ceil(ROLLOUT_SETTLE_MS - sinceStart));
      return;
    }
    if (!jsonEqual(JSON.parse(JSON.stringify(next)), normalizeStatus(status.ok ? status.value : {}))) {
      await kube.patchStatus(PLURALS.vips, namespace, name, { ...next, ...(decision.status.table === undefined ? { table: null } : {}) });
      const now = this.#d.now();
      // An Event per condition that flips; a condition set for the first time
      // is recorded only when it warns (a new VIP's first NoConflict,
      // NodesPending and AllBackendsHealthy would be three Events per VIP,
      // three thousand for a thousand VIPs, saying nothing).
      const events = transitions(vip.conditions, decision.status.conditions).flatMap((c) => {
        const first = findCondition(vip.conditions, c.type) === undefined;
        const warn = (c.type === 'Conflict' && c.status === 'True') || (c.type === 'Degraded' && c.status === 'True') || (c.type === 'Ready' && c.status === 'False' && !first);
        return first && !warn ? [] : [kube.event(obj, warn ? 'Warning' : 'Normal', c.reason, c.message, now).catch((e: unknown) => log.warn({ err: e }, 'Event not recorded'))];
      });
      await Promise.all(events); // best effort, side by side
      log.info({ ready: findCondition(decision.status.conditions, 'Ready')?.status, backends: decision.status.backendsSummary, nodes: decision.status.nodesSummary }, 'Updated status of VIP');
    }
  }
}

/** A table decoded into scratch arrays, copied out (its digest already checked). */
function copyTable(t: Table, digest: string): Table {
  const copy: Table = { size: t.size, backends: t.backends, slots: t.slots.slice(), ...(t.alternates === undefined ? {} : { alternates: t.alternates.slice() }) };
  knownDigest(copy, digest);
  return copy;
}

/** Status as read back: timestamps in the format conditions are written in. */
function normalizeStatus(s: VipStatus): unknown {
  const conditions = (s.conditions ?? []).map((c) => ({ ...c, lastTransitionTime: new Date(c.lastTransitionTime).toISOString().replace(/\.\d{3}Z$/, 'Z') }));
  return JSON.parse(JSON.stringify({ ...s, conditions }));
}
