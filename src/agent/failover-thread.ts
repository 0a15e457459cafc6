// failover-thread.ts: the main thread's side of the failover thread
// (failover-worker.ts). It starts the worker with the down map's fd, hands
// it the probe targets and, after every reconcile pass, the failover model
// (which backends serve which VIP, their probes and map indices); it mirrors
// the health the worker measures, so the rest of the agent reads it as it
// would a HealthChecker of its own (the Health interface). A flip arrives
// with the down writes the worker already made.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { jsonEqual } from '../core/conditions.js';
import type { FailoverModel } from '../core/failover-model.js';
import { INITIAL_HEALTH, type HealthState } from '../core/health.js';
import type { DownWrite, FailoverWorkerData, FromWorker, ToWorker } from './failover-worker.js';
import { StoppedStates, type Health, type HealthTarget } from './health-checker.js';
import type { ProbeResult } from './probe.js';

export interface FailoverThreadDeps {
  readonly downMap: { readonly fd: number; readonly maxEntries: number };
  /** A pair's health flipped; `writes`: backends the worker marked down for it. */
  readonly onChange: (key: string, healthy: boolean, last: ProbeResult, writes: readonly DownWrite[]) => void;
  readonly onProbe?: (key: string, result: ProbeResult) => void;
  readonly log: Logger;
}

export class FailoverThread implements Health {
  readonly #worker: Worker;
  readonly #d: FailoverThreadDeps;
  readonly #states = new Map<string, HealthState>();
  // As the worker's checker does: a target back soon resumes its state (until the worker's next report).
  readonly #stoppedStates = new StoppedStates();
  #targets = new Set<string>();
  #model: FailoverModel | null = null;
  #stopped = false;

  constructor(deps: FailoverThreadDeps) {
    this.#d = deps;
    const workerData: FailoverWorkerData = { downFd: deps.downMap.fd, maxEntries: deps.downMap.maxEntries, flushMs: 200 };
    this.#worker = new Worker(new URL('./failover-worker.js', import.meta.url), { workerData });
    this.#worker.on('message', (m: FromWorker) => this.#receive(m));
    this.#worker.on('error', (e) => deps.log.error({ err: e }, 'Failover thread failed'));
    // The worker must not keep the process alive on its own (the agent ends on a signal).
    this.#worker.unref();
  }

  setTargets(targets: readonly HealthTarget[]): void {
    if (this.#stopped) return;
    this.#targets = new Set(targets.map((t) => t.key));
    for (const [key, state] of [...this.#states]) {
      if (this.#targets.has(key)) continue;
      this.#stoppedStates.remember(key, state);
      this.#states.delete(key);
    }
    for (const key of this.#targets) {
      if (this.#states.has(key)) continue;
      const resumed = this.#stoppedStates.take(key);
      if (resumed !== undefined) this.#states.set(key, resumed);
    }
    this.#stoppedStates.prune();
    this.#post({ type: 'targets', targets: [...targets] });
  }

  /** Hands the worker the current model, when it changed. */
  setModel(model: FailoverModel): void {
    if (this.#stopped || (this.#model !== null && jsonEqual(this.#model, model))) return;
    this.#model = model;
    this.#post({ type: 'model', model });
  }

  healthy(key: string): boolean {
    return this.#states.get(key)?.healthy ?? true;
  }

  measured(key: string): boolean | null {
    if (!this.#targets.has(key)) return null;
    return (this.#states.get(key) ?? INITIAL_HEALTH).healthy;
  }

  snapshot(): Map<string, HealthState> {
    return new Map([...this.#targets].map((k) => [k, this.#states.get(k) ?? INITIAL_HEALTH]));
  }

  stop(): void {
    if (this.#stopped) return;
    this.#post({ type: 'stop' });
    this.#stopped = true;
    void this.#worker.terminate();
  }

  #post(m: ToWorker): void {
    this.#worker.postMessage(m);
  }

  #receive(m: FromWorker): void {
    if (this.#stopped) return;
    if (m.type === 'probes') {
      for (const r of m.results) {
        if (!this.#targets.has(r.key)) continue;
        // A flip already reported carries a newer state than a batch still in flight.
        const known = this.#states.get(r.key);
        if (known === undefined || r.state.probes > known.probes) this.#states.set(r.key, r.state);
        this.#d.onProbe?.(r.key, r.result);
      }
      return;
    }
    if (this.#targets.has(m.key)) this.#states.set(m.key, m.state);
    if (m.error !== null) this.#d.log.error({ err: m.error }, 'The failover thread could not write the down state; the reconcile pass will');
    this.#d.onChange(m.key, m.healthy, m.result, m.writes);
  }
}
