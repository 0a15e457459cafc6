// flags.ts: `xdplb agent` flags, parsed and validated once (zod), frozen.
import { z } from 'zod';
import { flagOptions, parseFlags } from '../config/flags.js';
import { parseListenAddress } from '../net/http.js';

export const AGENT_USAGE = `usage: xdplb agent --interface IF (--config FILE | --kubernetes) [flags]
       xdplb agent --role decap --interface (IF|auto) --kubernetes [flags]
       xdplb agent --cleanup --interface IF

  --interface IF           the interface to attach the XDP load balancer to (required); with --role decap,
                           auto finds the interface holding the Node's InternalIP
  --role ROLE              loadbalancer (default): the XDP load balancer; decap: on a worker node, the decap
                           program for the VIPs of Services delivered through nodes (NodeReport decap.<node>)
  --xdp-mode MODE          auto (native, falling back to generic), native or generic (default auto)
  --config FILE            standalone mode: VIPs and backends from this YAML file, re-read on change
  --kubernetes             Kubernetes mode: VIPs and the operator's published tables from the API server
  --kubeconfig FILE        Kubernetes mode: kubeconfig (default: in-cluster, then $KUBECONFIG)
  --node-name NAME         Kubernetes mode: this node's name (default $NODE_NAME, then the host name)
  --namespace NS           Kubernetes mode: where NodeReports live (default $POD_NAMESPACE or xdplb-system)
  --report-interval SECONDS  Kubernetes mode: rewrite the NodeReport at least this often, as a heartbeat;
                           the operator stops counting a node silent for 3 intervals (default 10)
  --route-around on|off    Kubernetes mode: route around a backend this node's probes fail, or whose
                           endpoint turns not ready, at once in its own datapath (default on); off: only
                           the operator's tables take backends out (a quorum of nodes, over the API server)
  --owner-daemonset NAME   Kubernetes mode: on SIGTERM, remove the datapath when this DaemonSet (of
                           --namespace) is gone or being deleted: an uninstall; otherwise (a rollout,
                           a pod deleted) it keeps forwarding for the next pod (default: always keep)
  --metrics-address ADDR   serve Prometheus /metrics on ADDR (default 0.0.0.0:9477; "off" disables)
  --pin-dir DIR            bpffs directory for pins (default /sys/fs/bpf/xdplb)
  --object FILE            the XDP object to load (default: bpf/build/xdp_lb.o next to the install)
  --resync SECONDS         full reconcile interval (default 10)
  --log-level LEVEL        trace, debug, info, warn, error (default info)
  --cleanup                detach the program and remove the interface's pins, then exit`;

const schema = z
  .object({
    interface: z.string({ message: '--interface IF is required' }).regex(/^[^\s/]{1,15}$/, { message: '--interface must be an interface name (1 to 15 characters)' }),
    'xdp-mode': z.enum(['auto', 'native', 'generic']).default('auto'),
    role: z.enum(['loadbalancer', 'decap'], { message: '--role must be loadbalancer or decap' }).default('loadbalancer'),
    config: z.string().min(1, { message: '--config needs a file path' }).optional(),
    kubernetes: z.boolean().default(false),
    kubeconfig: z.string().optional(),
    'node-name': z.string().optional(),
    namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, { message: '--namespace must be a namespace name' }).optional(),
    'owner-daemonset': z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, { message: '--owner-daemonset must be a DaemonSet name' }).max(253).optional(),
    'metrics-address': z
      .string()
      .default('0.0.0.0:9477')
      .refine((a) => {
        if (a === 'off') return true;
        try {
          parseListenAddress(a);
          return true;
        } catch {
          return false;
        }
      }, { message: '--metrics-address must be HOST:PORT or off' }),
    'pin-dir': z.string().startsWith('/', { message: '--pin-dir must be an absolute path' }).default('/sys/fs/bpf/xdplb'),
    object: z.string().optional(),
    resync: z.coerce.number().positive().max(3600).default(10),
    'route-around': z.enum(['on', 'off'], { message: '--route-around must be on or off' }).default('on'),
    'report-interval': z.coerce.number().min(0.5, { message: '--report-interval must be at least 0.5 seconds' }).max(300).default(10),
    'log-level': z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
    cleanup: z.boolean().default(false),
  })
  .superRefine((f, ctx) => {
    if (f.cleanup) return;
    if ((f.config === undefined) === !f.kubernetes) ctx.addIssue({ code: 'custom', message: 'give exactly one of --config FILE (standalone) or --kubernetes' });
    if (f['owner-daemonset'] !== undefined && !f.kubernetes) ctx.addIssue({ code: 'custom', message: '--owner-daemonset needs --kubernetes' });
    if (f.role === 'decap' && !f.kubernetes) ctx.addIssue({ code: 'custom', message: '--role decap needs --kubernetes' });
    if (f.interface === 'auto' && f.role !== 'decap') ctx.addIssue({ code: 'custom', message: '--interface auto is for --role decap (the interface holding the Node\'s InternalIP); name the load balancer\'s interface' });
  });

export type AgentFlags = Readonly<z.infer<typeof schema>>;

/** The agent's flags, or null for --help. Throws BAD_FLAG naming the problem. */
export function parseAgentFlags(argv: readonly string[]): AgentFlags | null {
  return parseFlags(argv, flagOptions(['interface', 'role', 'xdp-mode', 'config', 'kubeconfig', 'node-name', 'namespace', 'owner-daemonset', 'metrics-address', 'pin-dir', 'object', 'resync', 'report-interval', 'route-around', 'log-level'], ['kubernetes', 'cleanup']), schema);
}
