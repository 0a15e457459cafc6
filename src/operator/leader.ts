// leader.ts: leader election on a coordination.k8s.io Lease, so that of the
// operator's replicas exactly one reconciles. The holder renews every
// renewMs; another replica takes over when it has seen no change of the lease
// for leaseSeconds (judged by its own clock from when it last saw the record
// change, so clocks need not agree). Losing the lease stops the leader's work
// at once (the caller exits, as client-go's leader election does).
import { CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { statusCode, type Kube } from './k8s.js';

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
      const lease = await this.#api.readNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace });
      if (lease.spec?.holderIdentity === this.#o.identity) {
        lease.spec.holderIdentity = undefined;
        lease.spec.leaseDurationSeconds = 1;
        await this.#api.replaceNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace, body: lease });
      }
    } catch (e) {
      this.#o.log.warn({ err: e }, 'Could not release the lease');
    }
  }

  async #tick(): Promise<void> {
    let leading = false;
    try {
      leading = await this.#tryAcquireOrRenew();
    } catch (e) {
      this.#o.log.warn({ err: e }, 'Lease update failed');
      leading = this.#leading && performance.now() - this.#observedAt < (this.#o.leaseSeconds ?? 15) * 1000;
    }
    if (this.#stopped) return;
    if (leading && !this.#leading) {
      this.#leading = true;
      this.#o.log.info({ lease: this.#o.name, identity: this.#o.identity }, 'Became the leader');
      this.#o.onStartedLeading();
    } else if (!leading && this.#leading) {
      this.#leading = false;
      this.#o.log.warn({ lease: this.#o.name }, 'Lost the leadership');
      this.#o.onStoppedLeading();
    }
    this.#timer = setTimeout(() => void this.#tick(), this.#o.renewMs ?? 2000);
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#o;
    const duration = this.#o.leaseSeconds ?? 15;
    const now = microTime(new Date());
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
      await this.#api.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: duration, acquireTime: now as never, renewTime: now as never, leaseTransitions: 0 } },
      });
      this.#observedAt = performance.now();
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
      await this.#api.replaceNamespacedLease({ name, namespace, body: lease });
    } catch (e) {
      if (statusCode(e) === 409) return false; // someone else wrote it first
      throw e;
    }
    this.#observedAt = performance.now();
    this.#observedRecord = JSON.stringify([identity, lease.spec.renewTime, lease.spec.leaseTransitions]);
    return true;
  }
}

/** A Lease's times are MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
