// leader.ts: leader election on a coordination.k8s.io Lease, so that of the
// operator's replicas exactly one reconciles. The holder renews every
// renewMs; another replica takes over when it has seen no change of the lease
// for leaseSeconds (judged by its own clock from when it last saw the record
// change, so clocks need not agree). A holder that cannot renew for
// leaseSeconds (counted from when it sent its last successful renewal, so it
// steps down no later than a standby may take over; a request that hangs
// counts as failed when the lease would run out), or that finds the lease
// held by another, steps down at once (onStoppedLeading) and keeps
// campaigning: the elector ticks until stop(), and onStartedLeading runs each
// time it wins the lease again. Transitions are logged once each.
import { CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { statusCode, type Kube } from '../kube/k8s.js';

export interface LeaderOptions {
  readonly kube: Kube;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseSeconds?: number;
  readonly renewMs?: number;
  readonly log: Logger;
  readonly onStartedLeading: () => void;
  readonly onStoppedLeading: () => void;
}

export class LeaderElector {
  readonly #o: LeaderOptions;
  readonly #api: CoordinationV1Api;
  #leading = false;
  #observedRecord = '';
  #observedAt = 0;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(o: LeaderOptions) {
    this.#o = o;
    this.#api = o.kube.kc.makeApiClient(CoordinationV1Api);
  }

  get leading(): boolean {
    return this.#leading;
  }

  start(): void {
    void this.#tick();
  }

  /** Stops renewing and, when leading, releases the lease so a standby takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (!this.#leading) return;
    try {
      const lease = await this.#o.kube.timed('get', 'leases', () => this.#api.readNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace }));
      if (lease.spec?.holderIdentity === this.#o.identity) {
        lease.spec.holderIdentity = undefined;
        lease.spec.leaseDurationSeconds = 1;
        await this.#o.kube.timed('update', 'leases', () => this.#api.replaceNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace, body: lease }));
      }
    } catch (e) {
      this.#o.log.warn({ err: e }, 'Could not release the lease');
    }
  }

  async #tick(): Promise<void> {
    const leaseMs = (this.#o.leaseSeconds ?? 15) * 1000;
    // A leader's attempt may last only until its lease runs out: a request
    // that hangs (a partition) must not keep it leading past that.
    const deadlineMs = this.#leading ? Math.max(0, this.#observedAt + leaseMs - performance.now()) : leaseMs;
    let leading = false;
    try {
      leading = await withDeadline(this.#tryAcquireOrRenew(), deadlineMs);
    } catch (e) {
      this.#o.log.warn({ err: e, lease: this.#o.name }, 'Lease update failed');
      leading = this.#leading && performance.now() - this.#observedAt < leaseMs;
    }
    if (this.#stopped) return;
    if (leading && !this.#leading) {
      this.#leading = true;
      this.#o.log.info({ lease: this.#o.name, identity: this.#o.identity }, 'Became the leader');
      this.#o.onStartedLeading();
    } else if (!leading && this.#leading) {
      this.#leading = false;
      this.#o.log.warn({ lease: this.#o.name, identity: this.#o.identity }, 'Lost the leadership; campaigning again');
      this.#o.onStoppedLeading();
    }
    this.#timer = setTimeout(() => void this.#tick(), this.#o.renewMs ?? 2000);
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#o;
    const duration = this.#o.leaseSeconds ?? 15;
    // Our own renewal counts from before it was sent: a standby that sees it
    // saw it after this instant, so we step down before it may take over.
    const sent = performance.now();
    const now = microTime(new Date());
    let lease: V1Lease;
    try {
      lease = await this.#o.kube.timed('get', 'leases', () => this.#api.readNamespacedLease({ name, namespace }));
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
      await this.#o.kube.timed('create', 'leases', () =>
        this.#api.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: duration, acquireTime: now as never, renewTime: now as never, leaseTransitions: 0 } },
        }),
      );
      this.#observedAt = sent;
      return true;
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseTransitions]);
    if (record !== this.#observedRecord) {
      this.#observedRecord = record;
      this.#observedAt = performance.now();
    }
    const held = spec.holderIdentity !== undefined && spec.holderIdentity !== null && spec.holderIdentity !== '';
    const expired = performance.now() - this.#observedAt > (spec.leaseDurationSeconds ?? duration) * 1000;
    if (held && spec.holderIdentity !== identity && !expired) return false;
    const takeover = spec.holderIdentity !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: duration,
      renewTime: now as never,
      ...(takeover ? { acquireTime: now as never, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
    };
    try {
      await this.#o.kube.timed('update', 'leases', () => this.#api.replaceNamespacedLease({ name, namespace, body: lease }));
    } catch (e) {
      if (statusCode(e) === 409) return false; // someone else wrote it first
      throw e;
    }
    this.#observedAt = sent;
    this.#observedRecord = JSON.stringify([identity, lease.spec.renewTime, lease.spec.leaseTransitions]);
    return true;
  }
}

/** Rejects when the promise has not settled within ms (the promise itself is left to settle). */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the API server within ${Math.round(ms)} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A Lease's times are MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
