// operator.ts: the operator assembled: informers over VIPs, Backends,
// EndpointSlices, published tables, node reports and Nodes feed a keyed work
// queue; only the leader (Lease) reconciles; every resync period every VIP is
// queued again, so a missed event is repaired (level-triggered). Only the
// EndpointSlices of Services some VIP references are watched: the slice
// informer is restarted with a new label selector when that set changes.
// Losing the Lease stops reconciling at once (the queue drops its work, the
// resync stops) while the informers keep running and the elector keeps
// campaigning; winning it again queues every VIP. A watch that fails (an API
// outage) is restarted with backoff until it succeeds, then every VIP is
// queued again. The process stays up throughout: only stop() ends it.
// NodeReports count only while fresh (node-liveness.ts): a node going stale
// or fresh again queues every VIP; a report's content changing queues the VIPs
// whose part of it changed, after SETTLE_MS (so fifty reports fold into one
// reconcile), as does a VipTable change; a heartbeat alone queues none. The leader
// removes the reports of deleted Nodes. Services, VipPools and Namespaces
// feed one more key, the decision of every Service's address
// (service-addresses.ts), queued on any change of them and every resync.
import type { Logger } from 'pino';
import { PLURALS } from '../api/coordinates.js';
import { emptySlices, referencedServices } from '../kube/endpoint-slices.js';
import { Kube, statusCode, type Cached, type Obj } from '../kube/k8s.js';
import { LeaderElector } from './leader.js';
import type { OperatorMetrics } from './metrics.js';
import { NodeLiveness } from './node-liveness.js';
import { WorkQueue } from './queue.js';
import { affectedVips, Reconciler, type Caches } from './reconciler.js';
import { ServiceAddresses } from './service-addresses.js';

/** What an informer holds, for its callbacks. */
type WatchKind = Parameters<typeof affectedVips>[1] | 'table' | 'address';

/** The queue key of the one decision over every Service of type LoadBalancer and VipPool (service-addresses.ts). */
export const ADDRESSES_KEY = '@service-addresses';

export interface OperatorOptions {
  readonly kube: Kube;
  readonly namespace: string;
  readonly identity: string;
  readonly leaderElect: boolean;
  readonly leaseSeconds: number;
  readonly renewMs: number;
  readonly resyncSeconds: number;
  readonly workers: number;
  /** Also give addresses to Services of type LoadBalancer without a loadBalancerClass. */
  readonly classlessServices?: boolean;
  readonly log: Logger;
  /** Where reconciles, the queue, leadership and publications are counted (the Kube's requests are, if it was made with the same metrics). */
  readonly metrics?: OperatorMetrics;
}

/**
 * First and largest wait before restarting a failed watch (doubling between),
 * and the wait after a 429: the API server is up but asks to come back (its
 * watch cache is still filling after a restart; Retry-After is 1 s).
 */
const WATCH_RETRY_MS = { base: 500, max: 5000, tooManyRequests: 1000 } as const;

/**
 * How long a VIP waits after a NodeReport or VipTable change before it is
 * reconciled over it, so the reports of fifty nodes (each programming the
 * same publication, or each finding the same backend down) fold into one
 * reconcile. Nodes route around a failing backend in their own datapath at
 * once; this only delays the published table that catches up.
 */
export const SETTLE_MS = 500;

export class Operator {
  readonly #o: OperatorOptions;
  readonly caches: { -readonly [K in keyof Caches]: Caches[K] };
  #sliceServices = '';
  /** Services whose EndpointSlices the slice informer follows and has synced. */
  #servicesWatched = new Set<string>();
  readonly queue: WorkQueue;
  readonly #elector: LeaderElector | null;
  #resync: NodeJS.Timeout | null = null;
  #leading = false;
  #started = false;
  #stopped = false;
  /** Informers the operator runs (a replaced slice informer leaves this set). */
  readonly #watched = new Set<Cached<Obj>>();
  /** Failed informers waiting for their restart, and their failures in a row. */
  readonly #retrying = new Map<Cached<Obj>, NodeJS.Timeout>();
  readonly #failures = new Map<Cached<Obj>, number>();
  readonly #liveness: NodeLiveness;
  readonly #reconciler: Reconciler;
  /** Services, VipPools and Namespaces: what Service addresses are decided from. */
  readonly addressCaches: { readonly services: Cached<Obj>; readonly pools: Cached<Obj>; readonly namespaces: Cached<Obj> };
  #sweep: NodeJS.Timeout | null = null;

  constructor(o: OperatorOptions) {
    this.#o = o;
    const k = o.kube;
    this.caches = {
      vips: k.customInformer(PLURALS.vips),
      backends: k.customInformer(PLURALS.backends),
      endpointSlices: emptySlices,
      tables: k.customInformer(PLURALS.tables),
      reports: k.customInformer(PLURALS.reports, o.namespace),
      nodes: k.nodeInformer(),
    };
    this.#liveness = new NodeLiveness({
      now: () => performance.now(),
      changed: (change) => {
        if (!this.#leading) return;
        if (change === 'all') this.#enqueueAll();
        else for (const key of new Set([...change.vips, ...reconciler.vipsWithBackends(change.addresses)])) this.queue.addAfter(key, SETTLE_MS);
      },
      log: o.log.child({ component: 'liveness' }),
    });
    const reconciler = new Reconciler({
      kube: k,
      caches: this.caches,
      reportNamespace: o.namespace,
      log: o.log.child({ component: 'reconciler' }),
      now: () => new Date(),
      reportFresh: (name) => this.#liveness.fresh(name),
      serviceWatched: (name) => this.#servicesWatched.has(name),
      ...(o.metrics === undefined ? {} : { published: (count) => o.metrics!.tablesPublished.inc(count), tableWriteRetried: () => o.metrics!.tableWritesRetried.inc() }),
      requeueAfter: (key, ms) => this.queue.addAfter(key, ms),
    });
    this.#reconciler = reconciler;
    this.addressCaches = { services: k.serviceInformer(), pools: k.customInformer(PLURALS.pools), namespaces: k.namespaceInformer() };
    const addresses = new ServiceAddresses({ kube: k, vips: this.caches.vips, ...this.addressCaches, classless: o.classlessServices ?? false, log: o.log.child({ component: 'addresses' }), now: () => new Date() });
    this.queue = new WorkQueue((key) => (key === ADDRESSES_KEY ? addresses.reconcile() : reconciler.reconcile(key)), {
      workers: o.workers,
      onError: (key, err, retryInMs) => o.log.warn({ key, err, retryInMs }, 'Reconcile failed; retrying'),
      ...(o.metrics === undefined ? {} : { observer: o.metrics.queueObserver() }),
    });
    this.#elector = o.leaderElect
      ? new LeaderElector({
          kube: k,
          namespace: o.namespace,
          name: 'xdplb-operator',
          identity: o.identity,
          leaseSeconds: o.leaseSeconds,
          renewMs: o.renewMs,
          log: o.log.child({ component: 'leader' }),
          onStartedLeading: () => this.#lead(),
          onStoppedLeading: () => this.#stepDown(),
        })
      : null;
  }

  /** True while this replica holds the Lease and reconciles. */
  get leading(): boolean {
    return this.#leading;
  }

  /** True once started while every watch runs (none failed and waiting for its restart). */
  get synced(): boolean {
    return this.#started && this.#retrying.size === 0 && !this.#stopped;
  }

  async start(): Promise<void> {
    this.#watch = (informer: Cached<Obj>, kind: WatchKind): void => {
      const enqueue = (o: Obj, gone = false): void => {
        if (kind === 'vip') this.#reconciler.noteVip(o, gone);
        if (!this.#leading) return;
        if (kind !== 'table' && kind !== 'address') for (const key of affectedVips(this.caches, kind, o)) this.queue.add(key);
      };
      // A VipTable changes mostly because this operator wrote it: the index follows at once, and
      // the VIPs it lists are looked at once its shards settle.
      const noteTable = (o: Obj, gone: boolean): void => {
        const affected = this.#reconciler.noteTable(o, gone);
        if (this.#leading) for (const key of affected) this.queue.addAfter(key, SETTLE_MS);
      };
      if (kind === 'report') {
        // Reports queue VIPs through their liveness: content changes and staleness, not heartbeats.
        informer.on('add', (o) => this.#liveness.observe(o));
        informer.on('update', (o) => this.#liveness.observe(o));
        informer.on('delete', (o) => this.#liveness.forget(o.metadata!.name!));
      } else if (kind === 'address') {
        const queue = (): void => {
          if (this.#leading) this.queue.add(ADDRESSES_KEY);
        };
        informer.on('add', queue);
        informer.on('update', queue);
        informer.on('delete', queue);
      } else if (kind === 'table') {
        informer.on('add', (o) => noteTable(o, false));
        informer.on('update', (o) => noteTable(o, false));
        informer.on('delete', (o) => noteTable(o, true));
      } else {
        informer.on('add', enqueue);
        informer.on('update', enqueue);
        informer.on('delete', (o) => enqueue(o, true));
      }
      informer.on('error', (err: unknown) => this.#restartLater(informer, kind, err));
      this.#watched.add(informer);
    };
    const watch = this.#watch;
    watch(this.caches.vips, 'vip');
    watch(this.caches.backends, 'backend');
    watch(this.caches.tables, 'table');
    watch(this.caches.reports, 'report');
    watch(this.caches.nodes, 'node');
    for (const informer of Object.values(this.addressCaches)) watch(informer, 'address');
    await Promise.all([...Object.values(this.caches), ...Object.values(this.addressCaches)].map((i: Cached<Obj>) => i.start()));
    await this.#followServices();
    const follow = (): void => void this.#followServices().catch((err: unknown) => this.#o.log.warn({ err }, 'EndpointSlice watch not updated'));
    this.caches.vips.on('add', follow);
    this.caches.vips.on('update', follow);
    this.caches.vips.on('delete', follow);
    // A deleted Node's report goes at once (the leader deletes it).
    this.caches.nodes.on('delete', (n: Obj) => {
      if (this.#leading) void this.#removeReport(n.metadata!.name!);
    });
    this.#scheduleSweep();
    this.#started = true;
    this.#o.log.info('Caches synced');
    if (this.#elector === null) this.#lead();
    else this.#elector.start();
  }

  #watch: (informer: Cached<Obj>, kind: WatchKind) => void = () => undefined;

  /** Restarts the EndpointSlice informer when the set of Services VIPs reference changes. */
  async #followServices(): Promise<void> {
    if (this.#stopped) return;
    const names = referencedServices(this.caches.vips.list());
    const key = names.join(',');
    if (key === this.#sliceServices) return;
    this.#sliceServices = key;
    const old = this.caches.endpointSlices;
    const next = names.length === 0 ? emptySlices : this.#o.kube.endpointSliceInformer(names);
    if (next !== emptySlices) {
      this.#watch(next, 'slice');
      await next.start();
    }
    this.caches.endpointSlices = next;
    this.#servicesWatched = new Set(names);
    await this.#unwatch(old);
    // The set changed: VIPs using Services may have gained or lost endpoints.
    if (this.#leading) this.#enqueueAll();
  }

  /**
   * client-node reports a failed list or watch through 'error' and then stops
   * the informer; it is started again after a backoff, until it succeeds. It
   * resumes from its last resourceVersion: the API server replays every
   * change since, or answers 410 Gone and client-node lists again.
   */
  #restartLater(informer: Cached<Obj>, kind: string, err: unknown): void {
    if (this.#stopped || !this.#watched.has(informer) || this.#retrying.has(informer)) return;
    const failures = (this.#failures.get(informer) ?? 0) + 1;
    this.#failures.set(informer, failures);
    const retryInMs = statusCode(err) === 429 ? WATCH_RETRY_MS.tooManyRequests : Math.min(WATCH_RETRY_MS.max, WATCH_RETRY_MS.base * 2 ** (failures - 1));
    this.#o.log.warn({ err, kind, retryInMs }, 'Watch failed; restarting it');
    this.#retrying.set(
      informer,
      setTimeout(() => void this.#restart(informer, kind), retryInMs),
    );
  }

  async #restart(informer: Cached<Obj>, kind: string): Promise<void> {
    this.#retrying.delete(informer);
    if (this.#stopped || !this.#watched.has(informer)) return;
    try {
      await informer.start();
    } catch (err) {
      this.#restartLater(informer, kind, err);
    }
    // A failure during start() was reported through 'error' and scheduled the next attempt.
    if (this.#retrying.has(informer) || !this.#watched.has(informer) || this.#stopped) return;
    this.#failures.delete(informer);
    this.#o.log.info({ kind }, 'Watch restarted');
    // Events may have been missed meanwhile: converge every VIP (level-triggered).
    if (this.#leading) this.#enqueueAll();
  }

  async #unwatch(informer: Cached<Obj>): Promise<void> {
    this.#watched.delete(informer);
    clearTimeout(this.#retrying.get(informer));
    this.#retrying.delete(informer);
    this.#failures.delete(informer);
    await informer.stop();
  }

  /** Marks reports that went stale; the leader removes stale reports whose Node does not exist. */
  #scheduleSweep(): void {
    this.#sweep = setTimeout(() => {
      if (this.#stopped) return;
      this.#liveness.sweep();
      if (this.#leading) {
        const nodes = new Set(this.caches.nodes.list().map((n) => n.metadata!.name!));
        for (const name of this.#liveness.staleReports()) {
          const report = this.caches.reports.get(name, this.#o.namespace);
          const node = String((report?.spec as { node?: string } | undefined)?.node ?? name);
          if (report !== undefined && !nodes.has(node)) void this.#removeReport(name);
        }
      }
      this.#scheduleSweep();
    }, this.#liveness.sweepEveryMs());
  }

  async #removeReport(name: string): Promise<void> {
    try {
      await this.#o.kube.delete(PLURALS.reports, this.#o.namespace, name);
      this.#o.log.info({ kind: 'NodeReport', namespace: this.#o.namespace, name }, 'Removed the NodeReport of a node that is gone');
    } catch (err) {
      this.#o.log.warn({ err, kind: 'NodeReport', name }, 'NodeReport not removed');
    }
  }

  #lead(): void {
    if (this.#stopped) return;
    this.#leading = true;
    this.#o.metrics?.leader.set(1);
    this.queue.start();
    this.#enqueueAll();
    if (this.#resync !== null) clearInterval(this.#resync);
    this.#resync = setInterval(() => this.#enqueueAll(), this.#o.resyncSeconds * 1000);
  }

  /** Lost the Lease: stop reconciling at once; the informers and the elector keep running. */
  #stepDown(): void {
    this.#leading = false;
    this.#o.metrics?.leader.set(0);
    if (this.#resync !== null) clearInterval(this.#resync);
    this.#resync = null;
    this.queue.stop();
    this.#reconciler.stop();
  }

  #enqueueAll(): void {
    this.#reconciler.reindex();
    this.queue.add(ADDRESSES_KEY);
    for (const v of this.caches.vips.list()) this.queue.add(`${v.metadata!.namespace}/${v.metadata!.name}`);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#sweep !== null) clearTimeout(this.#sweep);
    this.#stepDown();
    await this.#elector?.stop();
    await Promise.all(Object.values(this.caches).map((i: Cached<Obj>) => this.#unwatch(i)));
  }
}
