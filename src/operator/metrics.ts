// metrics.ts: the operator's Prometheus metrics, on a registry of its own,
// named like controller-runtime's so dashboards for Go controllers read them:
// reconciles by result and their duration, the work queue's depth, wait and
// retries, API requests by verb and resource (latency, errors by code),
// whether this replica leads, tables published and table writes retried. Served on /metrics beside
// /healthz and /readyz (health.ts).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueObserver } from './queue.js';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'result'>;
  readonly reconcileSeconds: Histogram;
  readonly queueDepth: Gauge;
  readonly queueWaitSeconds: Histogram;
  readonly retries: Counter;
  readonly apiRequestSeconds: Histogram<'verb' | 'resource'>;
  readonly apiErrors: Counter<'verb' | 'resource' | 'code'>;
  readonly leader: Gauge;
  readonly tablesPublished: Counter;
  readonly tableWritesRetried: Counter;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'xdplb_operator_' });
    const registers = [this.registry];
    const fast = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    this.reconciles = new Counter({ name: 'xdplb_operator_reconciles_total', help: 'VIP reconciles by result (success, error).', labelNames: ['result'], registers });
    this.reconcileSeconds = new Histogram({ name: 'xdplb_operator_reconcile_duration_seconds', help: 'Time one VIP reconcile took.', buckets: fast, registers });
    this.queueDepth = new Gauge({ name: 'xdplb_operator_workqueue_depth', help: 'VIP keys waiting in the work queue (not running, not delayed).', registers });
    this.queueWaitSeconds = new Histogram({ name: 'xdplb_operator_workqueue_queue_duration_seconds', help: 'Time a VIP key waited in the queue before its reconcile started.', buckets: fast, registers });
    this.retries = new Counter({ name: 'xdplb_operator_workqueue_retries_total', help: 'Reconciles that failed and were queued again with backoff.', registers });
    this.apiRequestSeconds = new Histogram({ name: 'xdplb_operator_api_request_duration_seconds', help: 'API server requests the operator made (writes, reads, lease), by verb and resource.', labelNames: ['verb', 'resource'], buckets: fast, registers });
    this.apiErrors = new Counter({ name: 'xdplb_operator_api_request_errors_total', help: 'API server requests that failed, by verb, resource and HTTP code (0: no answer).', labelNames: ['verb', 'resource', 'code'], registers });
    this.leader = new Gauge({ name: 'xdplb_operator_leader', help: '1 while this replica holds the Lease and reconciles.', registers });
    this.tablesPublished = new Counter({ name: 'xdplb_operator_tables_published_total', help: 'VIP table generations published (each VIP listed by a whole table; one shared table write may publish many).', registers });
    this.tableWritesRetried = new Counter({ name: 'xdplb_operator_table_writes_retried_total', help: 'Table writes that failed and were tried again a second later (their VIPs wait for them).', registers });
  }

  /** The work queue's observer, feeding the queue metrics. */
  queueObserver(): QueueObserver {
    return {
      depth: (n) => this.queueDepth.set(n),
      waited: (ms) => this.queueWaitSeconds.observe(ms / 1000),
      done: (ms, ok) => {
        this.reconcileSeconds.observe(ms / 1000);
        this.reconciles.inc({ result: ok ? 'success' : 'error' });
        if (!ok) this.retries.inc();
      },
    };
  }

  /** An API request finished: `code` is the HTTP status of a failure (0: none came back), null on success. */
  request(verb: string, resource: string, seconds: number, code: number | null): void {
    this.apiRequestSeconds.observe({ verb, resource }, seconds);
    if (code !== null) this.apiErrors.inc({ verb, resource, code: String(code) });
  }
}
