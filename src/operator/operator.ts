// operator.ts: the operator assembled: informers over VIPs, Backends,
// EndpointSlices, published tables, node reports and Nodes feed a keyed work
// queue; only the leader (Lease) reconciles; every resync period every VIP is
// queued again, so a missed event is repaired (level-triggered). Only the
// EndpointSlices of Services some VIP references are watched: the slice
// informer is restarted with a new label selector when that set changes.
import type { Logger } from 'pino';
import { Kube, PLURALS, type Cached, type Obj } from './k8s.js';
import { LeaderElector } from './leader.js';
import { WorkQueue } from './queue.js';
import { affectedVips, Reconciler, type Caches } from './reconciler.js';

export interface OperatorOptions {
  readonly kube: Kube;
  readonly namespace: string;
  readonly identity: string;
  readonly leaderElect: boolean;
  readonly leaseSeconds: number;
  readonly renewMs: number;
  readonly resyncSeconds: number;
  readonly workers: number;
  readonly log: Logger;
  /** Called when leadership is lost (the CLI exits; tests observe). */
  readonly onLostLeadership?: () => void;
}

/** A cache that holds nothing (no VIP references a Service). */
const emptySlices = {
  list: () => [],
  get: () => undefined,
  on: () => undefined,
  off: () => undefined,
  start: async () => undefined,
  stop: async () => undefined,
} as unknown as Cached<Obj>;

export class Operator {
  readonly #o: OperatorOptions;
  readonly caches: { -readonly [K in keyof Caches]: Caches[K] };
  #sliceServices = '';
  readonly queue: WorkQueue;
  readonly #elector: LeaderElector | null;
  #resync: NodeJS.Timeout | null = null;
  #leading = false;

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
    const reconciler = new Reconciler({ kube: k, caches: this.caches, reportNamespace: o.namespace, log: o.log.child({ component: 'reconciler' }), now: () => new Date() });
    this.queue = new WorkQueue((key) => reconciler.reconcile(key), {
      workers: o.workers,
      onError: (key, err, retryInMs) => o.log.warn({ key, err, retryInMs }, 'Reconcile failed; retrying'),
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
          onStoppedLeading: () => {
            this.#leading = false;
            this.queue.stop();
            o.onLostLeadership?.();
          },
        })
      : null;
  }

  get leading(): boolean {
    return this.#leading;
  }

  async start(): Promise<void> {
    this.#watch = (informer: Cached<Obj>, kind: Parameters<typeof affectedVips>[1]): void => {
      const enqueue = (o: Obj): void => {
        if (!this.#leading) return;
        for (const key of affectedVips(this.caches, kind, o)) this.queue.add(key);
      };
      informer.on('add', enqueue);
      informer.on('update', enqueue);
      informer.on('delete', enqueue);
      informer.on('error', (err: unknown) => {
        this.#o.log.warn({ err, kind }, 'Watch failed; restarting it');
        setTimeout(() => void informer.start().catch(() => undefined), 1000);
      });
    };
    const watch = this.#watch;
    watch(this.caches.vips, 'vip');
    watch(this.caches.backends, 'backend');
    watch(this.caches.tables, 'table');
    watch(this.caches.reports, 'report');
    watch(this.caches.nodes, 'node');
    await Promise.all(Object.values(this.caches).map((i: Cached<Obj>) => i.start()));
    await this.#followServices();
    const follow = (): void => void this.#followServices().catch((err: unknown) => this.#o.log.warn({ err }, 'EndpointSlice watch not updated'));
    this.caches.vips.on('add', follow);
    this.caches.vips.on('update', follow);
    this.caches.vips.on('delete', follow);
    this.#o.log.info('Caches synced');
    if (this.#elector === null) this.#lead();
    else this.#elector.start();
  }

  #watch: (informer: Cached<Obj>, kind: Parameters<typeof affectedVips>[1]) => void = () => undefined;

  /** Restarts the EndpointSlice informer when the set of Services VIPs reference changes. */
  async #followServices(): Promise<void> {
    const names = [
      ...new Set(this.caches.vips.list().map((v) => ((v.spec?.backends as { service?: { name?: string } } | undefined)?.service?.name ?? '')).filter((n) => /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(n))),
    ].sort();
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
    await old.stop();
    // The set changed: VIPs using Services may have gained or lost endpoints.
    if (this.#leading) this.#enqueueAll();
  }

  #lead(): void {
    this.#leading = true;
    this.#enqueueAll();
    this.#resync = setInterval(() => this.#enqueueAll(), this.#o.resyncSeconds * 1000);
  }

  #enqueueAll(): void {
    for (const v of this.caches.vips.list()) this.queue.add(`${v.metadata!.namespace}/${v.metadata!.name}`);
  }

  async stop(): Promise<void> {
    if (this.#resync !== null) clearInterval(this.#resync);
    this.queue.stop();
    await this.#elector?.stop();
    await Promise.all(Object.values(this.caches).map((i: Cached<Obj>) => i.stop()));
  }
}
