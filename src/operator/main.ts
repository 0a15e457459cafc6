// main.ts: `xdplb operator`: the Deployment's process. Flags parsed once (zod);
// runs until SIGTERM or SIGINT, releasing the lease on the way out so a
// standby takes over at once. Losing the lease (an API outage, another
// holder) does not end it: it stops reconciling, keeps its caches and
// campaigns again in-process, with /healthz answering throughout (it is
// alive) and /readyz while every watch runs.
import { hostname } from 'node:os';
import { pino } from 'pino';
import { z } from 'zod';
import { commandFlags, flagOptions, parseFlags } from '../config/flags.js';
import { isXdplbError } from '../core/errors.js';
import { Kube, loadKubeConfig } from '../kube/k8s.js';
import { serveHealth } from './health.js';
import { OperatorMetrics } from './metrics.js';
import { Operator } from './operator.js';

export const OPERATOR_USAGE = `usage: xdplb operator [flags]

  --kubeconfig FILE        kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)
  --namespace NS           the operator's namespace: its Lease and the NodeReports (default $POD_NAMESPACE or xdplb-system)
  --identity ID            this replica's identity in the Lease (default $POD_NAME or host-pid)
  --leader-elect BOOL      true (default) for 2+ replicas; false runs unconditionally
  --lease-seconds N        a standby takes over after N seconds without renewal (default 15)
  --resync SECONDS         queue every VIP again this often (default 60)
  --workers N              VIPs reconciled at once (default 8)
  --classless-services BOOL  true: also give addresses to Services of type LoadBalancer without a
                           loadBalancerClass (default false: only class xdplb.io/xdp)
  --health-address ADDR    serve /healthz, /readyz and /metrics on ADDR (default 0.0.0.0:8081; "off" disables)
  --log-level LEVEL        trace, debug, info, warn, error (default info)`;

const schema = z.object({
  kubeconfig: z.string().optional(),
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, { message: '--namespace must be a namespace name' }),
  identity: z.string().min(1),
  'leader-elect': z.enum(['true', 'false']).default('true'),
  'lease-seconds': z.coerce.number().int().min(2).max(300).default(15),
  resync: z.coerce.number().positive().max(86400).default(60),
  workers: z.coerce.number().int().min(1).max(64).default(8),
  'classless-services': z.enum(['true', 'false']).default('false'),
  'log-level': z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  'health-address': z
    .string()
    .default('0.0.0.0:8081')
    .refine((a) => a === 'off' || /^(?:\[[^\]]+\]|[^:]*):\d{1,5}$/.test(a), { message: '--health-address must be HOST:PORT or off' }),
});

export async function runOperator(argv: readonly string[], io: { out(l: string): void; err(l: string): void }): Promise<number> {
  const flags = commandFlags('operator', OPERATOR_USAGE, io, () =>
    parseFlags(
      argv,
      flagOptions(['kubeconfig', 'namespace', 'identity', 'leader-elect', 'lease-seconds', 'resync', 'workers', 'classless-services', 'log-level', 'health-address']),
      schema,
      (v) => ({ ...v, namespace: v.namespace ?? process.env.POD_NAMESPACE ?? 'xdplb-system', identity: v.identity ?? process.env.POD_NAME ?? `${hostname()}-${process.pid}` }),
    ),
  );
  if (typeof flags === 'number') return flags;
  const log = pino({ level: flags['log-level'], base: { component: 'operator', identity: flags.identity } });
  const metrics = new OperatorMetrics();
  const kube = new Kube(loadKubeConfig(flags.kubeconfig), (verb, resource, seconds, code) => metrics.request(verb, resource, seconds, code));
  const operator = new Operator({
    kube,
    namespace: flags.namespace,
    identity: flags.identity,
    leaderElect: flags['leader-elect'] === 'true',
    leaseSeconds: flags['lease-seconds'],
    renewMs: Math.max(500, (flags['lease-seconds'] * 1000) / 5),
    resyncSeconds: flags.resync,
    workers: flags.workers,
    classlessServices: flags['classless-services'] === 'true',
    log,
    metrics,
  });
  const health = flags['health-address'] === 'off' ? null : await serveHealth(flags['health-address'], () => operator.synced, metrics.registry);
  await operator.start();
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  log.info('Stopping');
  health?.close();
  await operator.stop();
  return 0;
}
