// metrics.ts: the agent's Prometheus metrics, on a registry of its own (no
// global default registry, so tests can run several agents in one process).
// Datapath counters are read from the per-CPU maps at scrape time, so the
// exported values are the kernel's, not a copy that may lag.
import { createServer, type Server } from 'node:http';
import { listenOn } from '../net/http.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface DatapathCounters {
  /** Per VIP name: packets and bytes. */
  vips(): Iterable<{ vip: string; packets: bigint; bytes: bigint }>;
  /** Per backend address: packets and bytes. */
  backends(): Iterable<{ backend: string; packets: bigint; bytes: bigint }>;
  /** Per reason code name: packets. */
  reasons(): Iterable<{ reason: string; packets: bigint }>;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly programmingSeconds: Histogram;
  readonly reconciles: Counter<'result'>;
  readonly tableGeneration: Gauge<'vip'>;
  readonly tableInfo: Gauge<'vip' | 'digest'>;
  readonly backendHealthy: Gauge<'backend' | 'check'>;
  readonly probes: Counter<'backend' | 'check' | 'result'>;
  readonly backendServing: Gauge<'vip' | 'backend'>;
  readonly xdpMode: Gauge<'interface' | 'mode'>;
  readonly configErrors: Counter;
  readonly vipRefused: Gauge<'vip'>;
  readonly backendDown: Gauge<'backend'>;
  readonly routedAround: Counter;
  readonly tableCheckFailures: Counter;
  #counters: DatapathCounters | null = null;

  constructor(labels: Record<string, string> = {}) {
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry, prefix: 'xdplb_agent_' });
    const registers = [this.registry];
    this.programmingSeconds = new Histogram({
      name: 'xdplb_agent_programming_seconds',
      help: 'Time from a desired-state change (config, health, neighbour) to the maps programmed.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.reconciles = new Counter({ name: 'xdplb_agent_reconciles_total', help: 'Reconcile passes by result.', labelNames: ['result'], registers });
    this.tableGeneration = new Gauge({ name: 'xdplb_agent_table_generation', help: 'Tables programmed for the VIP since the agent started.', labelNames: ['vip'], registers });
    this.tableInfo = new Gauge({ name: 'xdplb_agent_table_info', help: 'Digest of the VIP table read back from the kernel after programming (value 1).', labelNames: ['vip', 'digest'], registers });
    this.backendHealthy = new Gauge({ name: 'xdplb_agent_backend_healthy', help: '1 if the backend passes this health check (shared by every VIP checking it the same way) from this node.', labelNames: ['backend', 'check'], registers });
    this.backendServing = new Gauge({ name: 'xdplb_agent_backend_serving', help: '1 if the backend holds slots in the VIP table.', labelNames: ['vip', 'backend'], registers });
    this.probes = new Counter({ name: 'xdplb_agent_health_probes_total', help: 'Health probes by backend, check (type:port[path]) and result; one probe serves every VIP checking the backend the same way.', labelNames: ['backend', 'check', 'result'], registers });
    this.xdpMode = new Gauge({ name: 'xdplb_agent_xdp_mode', help: 'XDP attach mode in use (value 1).', labelNames: ['interface', 'mode'], registers });
    this.configErrors = new Counter({ name: 'xdplb_agent_config_errors_total', help: 'Configuration files rejected.', registers });
    this.backendDown = new Gauge({ name: 'xdplb_agent_backend_down', help: '1 while this node\'s datapath routes around the backend (its slots take their alternates), by its own probes or its endpoint\'s readiness.', labelNames: ['backend'], registers });
    this.tableCheckFailures = new Counter({ name: 'xdplb_agent_table_check_failures_total', help: 'Tables whose slots, re-read from the kernel on a resync, differed from what was written (each is written again).', registers });
    this.routedAround = new Counter({ name: 'xdplb_agent_routed_around_total', help: 'Backends marked down in this node\'s datapath (one map write each), before any new table.', registers });
    this.vipRefused = new Gauge({ name: 'xdplb_agent_vip_refused', help: '1 while the VIP is wanted but left out of the datapath because it does not fit its capacities.', labelNames: ['vip'], registers });

    const self = this;
    new Counter({
      name: 'xdplb_vip_packets_total',
      help: 'Packets the datapath matched to the VIP.',
      labelNames: ['vip'],
      registers,
      collect() {
        this.reset();
        for (const c of self.#counters?.vips() ?? []) this.inc({ vip: c.vip }, Number(c.packets));
      },
    });
    new Counter({
      name: 'xdplb_vip_bytes_total',
      help: 'Bytes the datapath matched to the VIP.',
      labelNames: ['vip'],
      registers,
      collect() {
        this.reset();
        for (const c of self.#counters?.vips() ?? []) this.inc({ vip: c.vip }, Number(c.bytes));
      },
    });
    new Counter({
      name: 'xdplb_backend_packets_total',
      help: 'Packets the datapath sent to the backend.',
      labelNames: ['backend'],
      registers,
      collect() {
        this.reset();
        for (const c of self.#counters?.backends() ?? []) this.inc({ backend: c.backend }, Number(c.packets));
      },
    });
    new Counter({
      name: 'xdplb_backend_bytes_total',
      help: 'Bytes the datapath sent to the backend.',
      labelNames: ['backend'],
      registers,
      collect() {
        this.reset();
        for (const c of self.#counters?.backends() ?? []) this.inc({ backend: c.backend }, Number(c.bytes));
      },
    });
    new Counter({
      name: 'xdplb_datapath_packets_total',
      help: 'Packets by datapath reason code (dispositions sum to packets seen; events are extra).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const c of self.#counters?.reasons() ?? []) this.inc({ reason: c.reason }, Number(c.packets));
      },
    });
  }

  /** Where scrape-time datapath counters come from. */
  setCounters(counters: DatapathCounters | null): void {
    this.#counters = counters;
  }

  /**
   * Serves /metrics, /healthz and, when given, /status (the agent's state as
   * JSON: what it programmed, read back) on host:port; resolves once listening.
   */
  async serve(address: string, status?: () => unknown): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url === '/metrics') {
        this.registry
          .metrics()
          .then((text) => {
            res.setHeader('content-type', this.registry.contentType);
            res.end(text);
          })
          .catch((e: unknown) => {
            res.statusCode = 500;
            res.end(String(e));
          });
      } else if (req.url === '/healthz') {
        res.end('ok\n');
      } else if (req.url === '/status' && status !== undefined) {
        res.setHeader('content-type', 'application/json');
        res.end(`${JSON.stringify(status())}\n`);
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    return listenOn(server, address);
  }
}
