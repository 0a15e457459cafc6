// reconciler.ts: one pass for one LoadBalancerVip, level-triggered: read the
// informers' caches, let core/vip-decision decide, then converge the world:
// finalizer, the decided table published as the VIP's new generation (a
// shared table, written once for every VIP that has it: table-publisher.ts;
// the old one goes once the new one is whole), one status write when the
// status differs (after a publication, once its rollout settles), Events on
// condition flips only. Tables come from a memo shared by every VIP (equal
// requests, equal tables), and a VIP's published table is decoded once per
// set of shard objects. Only fresh NodeReports
// count (node-liveness.ts). The xdplb.io objects are read through src/api's
// parsers (defaults applied); one that does not parse is logged and left out.
import type { Logger } from 'pino';
import { FINALIZER, PLURALS } from '../api/coordinates.js';
import {
  backendObjectOf,
  nodeViewOf,
  parseBackend,
  parseNodeReport,
  parseVip,
  parseVipStatus,
  candidateShards,
  TableIndex,
  vipCheckOf,
  type TableCandidate,
  vipObjectOf,
  writtenVipStatus,
  type LoadBalancerVip,
  type Parsed,
  type VipStatus,
} from '../api/index.js';
import { findCondition, jsonEqual, transitions } from '../core/conditions.js';
import { assembleShards } from '../core/table-shards.js';
import type { Table } from '../core/maglev.js';
import { knownDigest, TableMemo } from '../core/table-memo.js';
import { findConflicts, type Conflict } from '../core/claims.js';
import { claimOf, decideVip, secondHopsEnd, selectorMatches, type BackendObject, type NodeView, type PublishedTable, type VipDecision, type WorkerNode } from '../core/vip-decision.js';
import { parseEndpointSlice } from '../kube/endpoint-slices.js';
import type { Cached, Kube, Obj } from '../kube/k8s.js';
import { TablePublisher } from './table-publisher.js';

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
  /** VIP generations published (their table written). */
  readonly published?: (count: number) => void;
  /** A table write failed and is tried again. */
  readonly tableWriteRetried?: () => void;
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
 * Deciding from a cache that lags is safe (shards are immutable and the list
 * of VIPs is written conditionally, so a stale write is refused and retried):
 * the wait only saves a wasted write, and it bounds how long a change waits
 * on a watch event that never comes (a change of a Backend waited 26 s on
 * the old 30 s bound in a control-plane run).
 */
const EXPECTATION_TIMEOUT_MS = 5_000;
const EXPECTATION_RETRY_MS = 1000;

/** How soon after an old table was superseded (or a VIP went) unused tables are looked for. */
const SWEEP_DELAY_MS = 2000;

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

/** Keys of the VIPs an object's change may affect (informer callbacks enqueue these; tables: Reconciler.noteTable). */
export function affectedVips(caches: Caches, kind: 'vip' | 'backend' | 'slice' | 'report' | 'node', o: Obj): string[] {
  const ns = o.metadata?.namespace;
  switch (kind) {
    case 'vip':
      return [`${ns}/${o.metadata!.name}`];
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
  /** Per VIP key: what of it changes its claims (uid, generation, deletion); and every VIP's conflict, until one does. */
  readonly #vipStamps = new Map<string, string>();
  #claims: ReadonlyMap<string, Conflict> | undefined;
  /** Per Backend ("namespace/name"): whether it was last found unhealthy by quorum (its Events follow the flips). */
  readonly #backendUnhealthy = new Map<string, boolean>();
  /**
   * Per VIP key: the published generation and when (ms since the epoch) this
   * operator first saw it published: its second hops' drain runs from there
   * (after a restart, from the restart: kept longer, never shorter).
   */
  readonly #publishedSince = new Map<string, { readonly generation: number; readonly at: number }>();
  /** Per VIP key: when (performance.now()) this operator last published a generation of it. */
  readonly #publishedAt = new Map<string, number>();
  /** Per VIP key: the generation its last publication asked for, until the informer shows it whole (or the expectation times out). */
  readonly #expected = new Map<string, { readonly generation: number; readonly until: number }>();
  /** Which tables each VIP is published with, from the VipTable informer's events (the operator rebuilds it before it reconciles). */
  #index = new TableIndex();
  readonly #publisher: TablePublisher;
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
    this.#publisher = new TablePublisher({
      kube: deps.kube,
      index: () => this.#index,
      liveVip: (namespace, name) => {
        const o = deps.caches.vips.get(name, namespace);
        return o === undefined || o.metadata?.deletionTimestamp !== undefined ? undefined : o.metadata?.uid;
      },
      log: deps.log,
      ...(deps.published === undefined ? {} : { published: deps.published }),
      ...(deps.tableWriteRetried === undefined ? {} : { retried: deps.tableWriteRetried }),
    });
  }

  /**
   * A VipTable was added, changed or removed (the informer's events): the
   * index follows, so a reconcile reads its own tables instead of every
   * VipTable. Returns the keys of the VIPs the change concerns.
   */
  noteTable(o: Obj, gone: boolean): string[] {
    return this.#index.note(o, gone);
  }

  /**
   * Rebuilds what it keeps from the informers' whole caches (on every resync
   * and watch restart: level-triggered): the table index and the claims; and
   * looks for tables no VIP programs.
   */
  reindex(): void {
    this.#index = TableIndex.of(this.#d.caches.tables.list());
    this.#claims = undefined;
    this.#sweepSoon();
  }

  /** Deletes, soon, the tables no VIP programs any more (table-publisher.ts). */
  #sweepSoon(): void {
    if (this.#sweepTimer !== undefined) return;
    this.#sweepTimer = setTimeout(() => {
      this.#sweepTimer = undefined;
      this.#publisher.sweep().catch((e: unknown) => this.#d.log.warn({ err: e }, 'Unused tables not deleted; trying again at the next resync'));
    }, SWEEP_DELAY_MS);
  }

  /** Stops the publisher's timers (what is asked and unwritten is asked again by the next leader's reconciles). */
  stop(): void {
    clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.#publisher.stop();
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

  /** The published table with the time its generation was first seen published. */
  #since(key: string, published: PublishedTable | null): PublishedTable | null {
    if (published === null) return null;
    let seen = this.#publishedSince.get(key);
    if (seen?.generation !== published.generation) this.#publishedSince.set(key, (seen = { generation: published.generation, at: this.#d.now().getTime() }));
    return { ...published, since: new Date(seen.at) };
  }

  /**
   * The newest whole generation of a VIP's tables, decoded and its digest
   * checked once per set of shard objects; null when none is whole, or when
   * it is inconsistent (logged once: a fresh table is published over it).
   * Equal tables of different VIPs are held once (the memo interns them):
   * a shared table is decoded once, for the first of its VIPs.
   */
  #publishedOf(key: string, candidates: readonly TableCandidate[], log: Logger): PublishedTable | null {
    const newest = candidates.find((c) => c.whole);
    const from = newest?.signature ?? '';
    const cached = this.#published.get(key);
    if (cached !== undefined && cached.from === from) return cached.table;
    let table: PublishedTable | null = null;
    try {
      const held = newest === undefined || newest.legacy ? undefined : this.#tables.held(newest.digest);
      // Decoded into reused arrays; copied only when no other VIP holds this very table.
      const assembled = newest === undefined ? null : held !== undefined ? { table: held, generation: newest.generation, digest: newest.digest } : assembleShards(candidateShards(newest, key), { scratch: true });
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

  /**
   * A LoadBalancerVip was added, changed or removed (the informer's events):
   * the claims are computed again only when a VIP's spec or deletion changed,
   * not on its status writes.
   */
  noteVip(o: Obj, gone: boolean): void {
    const key = `${o.metadata?.namespace}/${o.metadata?.name}`;
    const stamp = gone ? undefined : `${o.metadata?.uid}/${o.metadata?.generation}/${o.metadata?.deletionTimestamp === undefined ? '' : 'deleting'}`;
    if (this.#vipStamps.get(key) === stamp) return;
    if (stamp === undefined) this.#vipStamps.delete(key);
    else this.#vipStamps.set(key, stamp);
    this.#claims = undefined;
  }

  /**
   * Every VIP's conflict, computed once per set of claims (core/claims.ts
   * findConflicts): a VIP being deleted holds none (agents stop programming
   * it at once too).
   */
  #conflicts(): ReadonlyMap<string, Conflict> {
    this.#claims ??= findConflicts(
      parsedVips(this.#d.caches)
        .filter((v) => v.metadata.deletionTimestamp === undefined)
        .map((v) => claimOf(vipObjectOf(v))),
    );
    return this.#claims;
  }

  /**
   * Events on the Backends whose health by quorum flipped, once per flip
   * whichever VIP's reconcile sees it first (a Backend serves many VIPs). A
   * Backend first seen healthy records nothing.
   */
  #backendEvents(namespace: string, decided: VipDecision['backends'], objects: readonly BackendObject[], now: Date, log: Logger): Promise<void>[] {
    const out: Promise<void>[] = [];
    const byAddress = new Map<string, BackendObject[]>();
    for (const o of objects) if (o.namespace === namespace) byAddress.set(o.address, [...(byAddress.get(o.address) ?? []), o]);
    for (const b of decided) {
      if (b.source !== 'Backend' || (b.state !== 'Unhealthy' && b.state !== 'Serving')) continue;
      for (const o of byAddress.get(b.address) ?? []) {
        const key = `${namespace}/${o.name}`;
        const unhealthy = b.state === 'Unhealthy';
        const was = this.#backendUnhealthy.get(key);
        this.#backendUnhealthy.set(key, unhealthy);
        if (was === unhealthy || (was === undefined && !unhealthy)) continue;
        const raw = this.#d.caches.backends.get(o.name, namespace);
        if (raw === undefined) continue;
        const [type, reason, message] = unhealthy
          ? (['Warning', 'Unhealthy', `${b.address} fails its health checks on a majority of nodes: taken out of the tables of the VIPs it serves`] as const)
          : (['Normal', 'Healthy', `${b.address} passes its health checks again: back in the tables of the VIPs it serves`] as const);
        out.push(this.#d.kube.event(raw, type, reason, message, now).catch((e: unknown) => log.warn({ err: e }, 'Event not recorded')));
      }
    }
    return out;
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const { caches, kube } = this.#d;
    const log = this.#d.log.child({ kind: 'LoadBalancerVip', namespace, name });
    const obj = caches.vips.get(name, namespace);
    // Its shards of the earlier, per-VIP form (removed once it has a newer table).
    const legacy = this.#index.legacyShards(namespace, name);

    if (obj === undefined) {
      this.#backendsOf.delete(key);
      this.#published.delete(key);
      this.#publishedAt.delete(key);
      this.#publishedSince.delete(key);
      this.#expected.delete(key);
      // Gone (its finalizer already ran, or it never had one): its tables go too
      // (shared ones once no other VIP programs them).
      for (const s of legacy) await kube.delete(PLURALS.tables, namespace, s.name);
      this.#sweepSoon();
      return;
    }
    const finalizers = obj.metadata!.finalizers ?? [];
    if (obj.metadata!.deletionTimestamp !== undefined) {
      if (!finalizers.includes(FINALIZER)) return;
      for (const s of legacy) await kube.delete(PLURALS.tables, namespace, s.name);
      // A VIP being deleted programs nothing: the tables only it has are deleted.
      await this.#publisher.sweep();
      await kube.setFinalizers(PLURALS.vips, namespace, name, finalizers.filter((f) => f !== FINALIZER), obj.metadata!.resourceVersion!);
      log.info('Removed the published table and the finalizer of deleted VIP');
      return;
    }
    if (!finalizers.includes(FINALIZER)) {
      await kube.setFinalizers(PLURALS.vips, namespace, name, [...finalizers, FINALIZER], obj.metadata!.resourceVersion!);
      return; // the update re-queues this VIP
    }

    // A generation asked for and not yet shown whole by the informer: deciding now would
    // find the previous generation and ask again. Its shards' events queue the VIP.
    const uid = obj.metadata!.uid ?? '';
    const candidates = this.#index.candidates(namespace, name, uid);
    const expected = this.#expected.get(key);
    if (expected !== undefined) {
      const shown = candidates.some((c) => c.generation === expected.generation && c.whole);
      if (!shown && performance.now() > expected.until) log.warn({ generation: expected.generation, waitedMs: EXPECTATION_TIMEOUT_MS }, 'The informer never showed the table just published; deciding from the cache');
      if (shown || performance.now() > expected.until) this.#expected.delete(key);
      else {
        log.debug({ generation: expected.generation }, 'Waiting for the informer to show the table just published');
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
    const decapNodes = new Set<string>();
    for (const o of caches.reports.list(this.#d.reportNamespace)) {
      if (!this.#d.reportFresh(o.metadata!.name!)) continue;
      const r = parseNodeReport(o);
      if (!r.ok) {
        log.warn({ report: r.key, problem: r.problem }, 'Left out NodeReport that does not parse');
        continue;
      }
      if (r.value.spec.role === 'Decap') {
        decapNodes.add(r.value.spec.node);
        continue;
      }
      const labels = nodeLabels.get(r.value.spec.node) ?? {};
      if (vip.spec.nodeSelector !== undefined && !Object.entries(vip.spec.nodeSelector).every(([k, v]) => labels[k] === v)) continue;
      nodes.push(nodeViewOf(r.value, { namespace, name, check }));
    }
    const published = this.#since(key, this.#publishedOf(key, candidates, log));

    const backendObjects = parsed(caches.backends.list().map(parseBackend), log, 'Backend').map(backendObjectOf);
    const decision = decideVip({
      vip,
      conflicts: this.#conflicts(),
      backends: backendObjects,
      endpointSlices: caches.endpointSlices.list().map(parseEndpointSlice),
      nodes,
      ...(vip.spec.backends.service?.delivery === 'Nodes' ? { workers: workersOf(caches.nodes.list(), decapNodes) } : {}),
      published,
      highestGeneration: this.#index.highestGeneration(namespace, name),
      now: this.#d.now(),
      tables: this.#tables,
    });

    this.#backendsOf.set(key, new Set(decision.backends.map((b) => b.address)));
    // Second hops end with their drain: the VIP is decided again then (a new generation without them).
    const hopsEnd = secondHopsEnd(vip, published);
    if (hopsEnd !== null && hopsEnd > this.#d.now().getTime()) this.#d.requeueAfter?.(key, hopsEnd - this.#d.now().getTime() + 100);

    // Publish: a new generation is written beside the published one (never
    // over it), and older generations are removed only once the current one
    // is whole, so an agent always finds a complete generation.
    if (decision.table !== null) {
      if (published === null || decision.generation !== published.generation) {
        this.#publisher.publish(namespace, name, uid, decision.generation, decision.table);
        this.#expected.set(key, { generation: decision.generation, until: performance.now() + EXPECTATION_TIMEOUT_MS });
        this.#publishedAt.set(key, performance.now());
        log.info({ generation: decision.generation, digest: decision.digest, size: decision.table.size, backends: decision.backends.length }, 'Publishing table of VIP');
      }
      if (published !== null) {
        await Promise.all(legacy.filter((s) => s.generation !== published.generation).map((s) => kube.delete(PLURALS.tables, namespace, s.name)));
        // Tables of its earlier generations: deleted once no VIP programs them.
        if (candidates.some((c) => !c.legacy && c.generation < published.generation)) this.#sweepSoon();
      }
    } else if (decision.conflict !== null && candidates.length > 0) {
      // The older claim keeps the address: this VIP's tables go.
      for (const s of legacy) await kube.delete(PLURALS.tables, namespace, s.name);
      if (candidates.some((c) => !c.legacy)) this.#publisher.withdraw(namespace, name);
    }

    // Status: one write, and none when nothing changed. While a generation
    // this operator just published rolls out, the write waits (up to
    // ROLLOUT_SETTLE_MS) for every node to program it, so a change costs one
    // status write however many nodes report. A new VIP's first status waits
    // the same way (at a thousand new VIPs, one write each instead of two).
    const next = writtenVipStatus(decision.status);
    const sinceStart = performance.now() - (this.#publishedAt.get(key) ?? -Infinity);
    const pending = decision.status.nodes.programmed < decision.status.nodes.expected && status.ok;
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
      const before = findCondition(vip.conditions, 'Degraded')?.reason;
      const events = transitions(vip.conditions, decision.status.conditions).flatMap((c) => {
        // A backend's health is recorded once, on the Backend (below), not on each of the thousand VIPs it serves.
        if (c.type === 'Degraded' && (c.reason === 'BackendsUnhealthy' || (c.reason === 'AllBackendsHealthy' && before === 'BackendsUnhealthy'))) return [];
        const first = findCondition(vip.conditions, c.type) === undefined;
        const warn = (c.type === 'Conflict' && c.status === 'True') || (c.type === 'Degraded' && c.status === 'True') || (c.type === 'Ready' && c.status === 'False' && !first);
        return first && !warn ? [] : [kube.event(obj, warn ? 'Warning' : 'Normal', c.reason, c.message, now).catch((e: unknown) => log.warn({ err: e }, 'Event not recorded'))];
      });
      await Promise.all([...events, ...this.#backendEvents(namespace, decision.backends, backendObjects, now, log)]); // best effort, side by side
      log.info({ ready: findCondition(decision.status.conditions, 'Ready')?.status, backends: decision.status.backendsSummary, nodes: decision.status.nodesSummary }, 'Updated status of VIP');
    }
  }
}

/** A table decoded into scratch arrays, copied out (its digest already checked). */
function copyTable(t: Table, digest: string): Table {
  const copy: Table = {
    size: t.size,
    backends: t.backends,
    slots: t.slots.slice(),
    ...(t.alternates === undefined ? {} : { alternates: t.alternates.slice() }),
    ...(t.secondHops === undefined ? {} : { secondHops: t.secondHops.slice() }),
  };
  knownDigest(copy, digest);
  return copy;
}

/** Status as read back: timestamps in the format conditions are written in. */
function normalizeStatus(s: VipStatus): unknown {
  const conditions = (s.conditions ?? []).map((c) => ({ ...c, lastTransitionTime: new Date(c.lastTransitionTime).toISOString().replace(/\.\d{3}Z$/, 'Z') }));
  return JSON.parse(JSON.stringify({ ...s, conditions }));
}

/** The cluster's Nodes as delivery targets: their InternalIPs, and whether they are Ready and run the decap role. */
function workersOf(nodes: readonly Obj[], decap: ReadonlySet<string>): WorkerNode[] {
  return nodes.map((n) => {
    const status = (n.status ?? {}) as { addresses?: { type?: string; address?: string }[]; conditions?: { type?: string; status?: string }[] };
    const ready = status.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    const addresses = (status.addresses ?? []).filter((a) => a.type === 'InternalIP' && typeof a.address === 'string').map((a) => a.address!);
    return { name: n.metadata!.name!, addresses, delivers: ready && decap.has(n.metadata!.name!) && n.metadata!.deletionTimestamp === undefined };
  });
}
