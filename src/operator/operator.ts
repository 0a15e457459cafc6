// operator.ts: the operator assembled: informers over VIPs, Backends,
// EndpointSlices, published tables, node reports and Nodes feed a keyed work
// queue; only the leader (Lease) reconciles; every resync period every VIP is
// queued again, so a missed event is repaired (level-triggered).
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

export class Operator {
  readonly #o: OperatorOptions;
  readonly caches: Caches;
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
      endpointSlices: k.endpointSliceInformer(),
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
    const watch = (informer: Cached<Obj>, kind: Parameters<typeof affectedVips>[1]): void => {
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
    watch(this.caches.vips, 'vip');
    watch(this.caches.backends, 'backend');
    watch(this.caches.endpointSlices, 'slice');
    watch(this.caches.tables, 'table');
    watch(this.caches.reports, 'report');
    watch(this.caches.nodes, 'node');
    await Promise.all(Object.values(this.caches).map((i: Cached<Obj>) => i.start()));
    this.#o.log.info('Caches synced');
    if (this.#elector === null) this.#lead();
    else this.#elector.start();
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
