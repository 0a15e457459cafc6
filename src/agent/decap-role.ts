// decap-role.ts: `xdplb agent --role decap`, what the agent does on a worker
// node that takes Services' traffic for its pods (issue 16). The load
// balancer encapsulates a Service's packets to the node (its VIP lists the
// nodes: backends.service.delivery Nodes); this role attaches the decap
// program to the node's interface, keeps its VIP set equal to the addresses
// of those VIPs, and reports itself (NodeReport decap.<node>, role Decap, a
// heartbeat) so the operator counts the node as one that delivers. The
// stripped packet goes up the node's stack, where its service proxy
// (kube-proxy, programming the Service's load-balancer address) takes it to
// a pod. Restarting it never drops traffic: the program is pinned and
// adopted; SIGTERM leaves it attached unless the DaemonSet is going.
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { PLURALS } from '../api/coordinates.js';
import { parseVip } from '../api/loadbalancervip.js';
import { attachDecap, detachDecap } from '../bpf/decap-attach.js';
import { applyDecapVips } from '../bpf/decap-writer.js';
import { readReasons } from '../bpf/datapath.js';
import { jsonEqual } from '../core/conditions.js';
import { ErrorCodes, XdplbError } from '../core/errors.js';
import { canonicalIp } from '../core/net.js';
import { Kube, loadKubeConfig, statusCode, type Obj } from '../kube/k8s.js';
import { listenOn } from '../net/http.js';
import { interfaceHolding } from '../net/interfaces.js';
import type { AgentFlags } from './flags.js';
import { daemonSetGone, writeNodeReport } from './node-report.js';

/** The addresses the decap program takes: those of the VIPs delivered through nodes, sorted. */
export function decapAddresses(vips: readonly Obj[]): string[] {
  const out = new Set<string>();
  for (const o of vips) {
    const v = parseVip(o);
    if (!v.ok || v.value.metadata.deletionTimestamp !== undefined || v.value.spec.backends?.service?.delivery !== 'Nodes') continue;
    out.add(canonicalIp(v.value.spec.address));
  }
  return [...out].sort();
}

/**
 * --interface auto: the interface of this host holding the Node's
 * InternalIP, where the load balancer's encapsulated packets arrive (it
 * sends them to that address).
 */
async function nodeInterface(kube: Kube, node: string): Promise<string> {
  const o = (await kube.core.readNode({ name: node })) as { status?: { addresses?: { type?: string; address?: string }[] } };
  const internal = (o.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' && typeof a.address === 'string').map((a) => a.address!);
  const found = interfaceHolding(internal);
  if (found === null) throw new XdplbError(ErrorCodes.BAD_FLAG, `--interface auto: no interface of this host holds an InternalIP of Node ${node} (${internal.join(', ') || 'it lists none'}); give --interface`);
  return found;
}

/** The NodeReport name of a node's decap role. */
export const decapReportName = (node: string): string => `decap.${node}`;

export async function runDecapRole(flags: AgentFlags, log: Logger, signal: Promise<string>): Promise<number> {
  const node = flags['node-name'] ?? process.env.NODE_NAME ?? hostname();
  const namespace = flags.namespace ?? process.env.POD_NAMESPACE ?? 'xdplb-system';
  const kube = new Kube(loadKubeConfig(flags.kubeconfig));
  const ifname = flags.interface === 'auto' ? await nodeInterface(kube, node) : flags.interface;
  const attached = attachDecap(ifname, flags['pin-dir'], flags['xdp-mode'], (maps) => applyDecapVips(maps, []));
  log.info({ adopted: attached.adopted, node, interface: ifname }, attached.adopted ? 'Adopted the pinned decap program' : 'Attached the decap program');
  let addresses: string[] = [];
  let reported = 0;
  const vips = kube.customInformer(PLURALS.vips);
  const converge = (): void => {
    const next = decapAddresses(vips.list());
    if (jsonEqual(next, addresses)) return;
    try {
      applyDecapVips(attached.maps, next);
      log.info({ vips: next }, 'Decapsulating for VIPs');
      addresses = next;
    } catch (e) {
      log.error({ err: e }, 'Writing the decap VIPs failed');
    }
  };
  for (const verb of ['add', 'update', 'delete'] as const) vips.on(verb, converge);
  let stopping = false;
  vips.on('error', (err: unknown) => {
    // Stopping the informer ends its watch too: that is no failure to recover from.
    if (stopping) return;
    log.warn({ err: (err as Error)?.message ?? String(err) }, 'Watch failed; restarting it');
    setTimeout(() => {
      if (!stopping) void vips.start().catch(() => undefined);
    }, 1000);
  });
  await vips.start();
  converge();

  /** The decap program's packet counters by outcome. */
  const packets = (): Record<string, number> => Object.fromEntries(Object.entries(readReasons(attached.maps.stats)).map(([reason, c]) => [reason, Number(c.packets)]));

  // The report: created once, its status rewritten every interval as a heartbeat.
  const name = decapReportName(node);
  const report = async (): Promise<void> => {
    const status = {
      observedTime: new Date().toISOString(),
      interface: ifname,
      reportIntervalSeconds: flags['report-interval'],
      programmedSummary: `decap ${addresses.length} VIPs`,
      decap: { vips: addresses, packets: packets() },
    };
    await writeNodeReport(kube, namespace, name, { node, role: 'Decap' }, status);
    reported = Date.now();
  };
  const beat = async (): Promise<void> => {
    try {
      await report();
    } catch (e) {
      log.warn({ err: e, code: statusCode(e) }, 'NodeReport update failed');
    }
  };
  await beat();
  const heartbeat = setInterval(() => void beat(), flags['report-interval'] * 1000);

  // /healthz for the kubelet; /status for tests and people: what the program decapsulates for, and its counters.
  const server =
    flags['metrics-address'] === 'off'
      ? null
      : await listenOn(
          createServer((req, res) => {
            if (req.url === '/healthz') {
              res.end('ok\n');
              return;
            }
            if (req.url !== '/status') {
              res.writeHead(404).end();
              return;
            }
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify({ role: 'decap', node, vips: addresses, reportedAt: reported, packets: packets() }));
          }),
          flags['metrics-address'],
        );

  const why = await signal;
  stopping = true;
  clearInterval(heartbeat);
  await vips.stop();
  server?.close();
  const owner = flags['owner-daemonset'];
  const uninstall = owner === undefined ? null : await daemonSetGone(kube, namespace, owner);
  attached.close();
  if (uninstall?.gone === true) {
    detachDecap(ifname, flags['pin-dir']);
    log.info({ signal: why, reason: uninstall.why }, 'Removed the decap program: the agent is being uninstalled');
  } else {
    log.info({ signal: why }, 'Stopping; the decap program stays attached for the next agent');
  }
  return 0;
}
