// worker.ts: a lab backend turned into a Kubernetes worker node (issue 16),
// as a Service of type LoadBalancer is delivered on a real cluster: a Node
// object as its kubelet would register it (InternalIP, Ready), "pods" as
// network namespaces behind a bridge in the worker, a real kube-proxy
// (nftables mode, the control plane's pinned version, built by
// scripts/build-control-plane --node) that programs the Services'
// load-balancer addresses, and the agent's decap role. The backend's own VIPs
// on lo and its server go: the worker delivers to pods only through
// kube-proxy. EndpointSlices are written by the test, as the endpoint
// controller would (no controller manager runs here).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlPlaneCacheDir, controlPlaneVersions, type ControlPlane } from './control-plane.js';
import type { Netns } from './netns.js';
import type { AgentProcess, BackendNode, LbTopology } from './topology.js';
import { LAB_BIN } from './root.js';
import { until } from './wait.js';
import type { ChildProcess } from 'node:child_process';

export interface Pod {
  readonly name: string;
  readonly address: string;
  readonly ns: Netns;
  server: ChildProcess;
}

export interface Worker {
  readonly node: BackendNode;
  /** The node's pod range, 10.244.<index>.0/24, its bridge at .1. */
  readonly index: number;
  readonly pods: Pod[];
  readonly decap: AgentProcess;
  readonly proxy: ChildProcess;
  /** The kube-proxy's output, for failure messages. */
  readonly proxyLog: () => string;
}

/** Port every pod serves on (the Services' targetPort). */
export const POD_PORT = 8080;

function kubeProxyBinary(): string {
  const path = join(controlPlaneCacheDir(), 'bin', `kube-proxy-${controlPlaneVersions().kubernetes}`);
  if (!existsSync(path)) throw new Error(`${path} missing: scripts/build-control-plane --node builds it (scripts/bootstrap does)`);
  return path;
}

/** A Node object as its kubelet registers it: InternalIP `address`, Ready (no kubelet runs in the lab's namespaces). */
export async function registerNode(cp: Pick<ControlPlane, 'kubectl'>, name: string, address: string, podCidr?: string): Promise<void> {
  const now = new Date().toISOString();
  await cp.kubectl(['apply', '-f', '-'], { input: `apiVersion: v1\nkind: Node\nmetadata: { name: ${name}, labels: { kubernetes.io/hostname: ${name} } }\n${podCidr === undefined ? '' : `spec: { podCIDR: ${podCidr} }\n`}` });
  await cp.kubectl(['patch', 'node', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address }, { type: 'Hostname', address: name }], conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'lab node', lastHeartbeatTime: now, lastTransitionTime: now }] } })]);
}

/** Makes backend `b` a worker node: Node object, bridge, kube-proxy, decap role. Pods come with addPod. */
export async function startWorker(topo: LbTopology, cp: ControlPlane, b: BackendNode, index: number, namespace: string): Promise<Worker> {
  // Delivery goes through kube-proxy only: no VIP on lo, no server of its own.
  topo.stopServer(b);
  for (const vip of topo.vips) b.ns.ip('addr', 'del', `${vip}/32`, 'dev', 'lo');
  b.ns.sysctl('net.ipv4.ip_forward', 1);
  b.ns.ip('link', 'add', 'cbr0', 'type', 'bridge');
  b.ns.ip('addr', 'add', `10.244.${index}.1/24`, 'dev', 'cbr0');
  b.ns.ip('link', 'set', 'cbr0', 'up');

  await registerNode(cp, b.name, b.address, `10.244.${index}.0/24`);

  const kubeconfig = await topo.connectToApiserver(b, cp.server, cp.kubeconfigPath);
  const config = join(topo.dir, `kube-proxy-${b.name}.json`);
  writeFileSync(config, JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig },
    hostnameOverride: b.name,
    mode: 'nftables',
    clusterCIDR: '10.244.0.0/16',
    // The Services' health check node ports and kube-proxy's own health port answer on the node's address.
    healthzBindAddress: '0.0.0.0:10256',
    metricsBindAddress: '127.0.0.1:10249',
    // Leave the machine's conntrack sysctls alone.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    nodePortAddresses: [`${b.address}/32`],
  }));
  const proxy = b.ns.spawn(kubeProxyBinary(), [`--config=${config}`, '--v=1']);
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-20_000);
  };
  proxy.stdout!.on('data', keep);
  proxy.stderr!.on('data', keep);
  await until(`kube-proxy on ${b.name} healthy`, () => {
    try {
      return b.ns.run('curl', ['-sf', '--max-time', '1', 'http://127.0.0.1:10256/healthz']).length > 0;
    } catch {
      return false;
    }
  }, 60_000).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}; kube-proxy said: ${out.slice(-3000)}`);
  });
  const decap = topo.startDecapRole(b, kubeconfig, namespace);
  return { node: b, index, pods: [], decap, proxy, proxyLog: () => out };
}

/** Adds a pod to a worker: a namespace on its bridge serving POD_PORT with its name. */
export async function addPod(topo: LbTopology, w: Worker): Promise<Pod> {
  const n = w.pods.length + 2;
  const name = `${w.node.name}-p${n - 1}`;
  const ns = topo.lab.ns(`${topo.tag}-${name}`);
  topo.lab.link(ns, 'eth0', w.node.ns, `v${name}`.slice(0, 15), 'cbr0');
  const address = `10.244.${w.index}.${n}`;
  ns.ip('addr', 'add', `${address}/24`, 'dev', 'eth0');
  ns.ip('route', 'add', 'default', 'via', `10.244.${w.index}.1`);
  const server = ns.spawn(process.execPath, [join(LAB_BIN, 'http-server.mjs'), name, String(POD_PORT)]);
  await new Promise((resolve) => server.stdout!.once('data', resolve));
  const pod = { name, address, ns, server };
  w.pods.push(pod);
  return pod;
}

/** The EndpointSlice of Service `service` over these pods, as the endpoint controller writes it (YAML). */
export function endpointSliceYaml(namespace: string, service: string, endpoints: readonly { pod: Pod; node: string; state?: 'ready' | 'terminating' }[], portName = 'http'): string {
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${service}-lab
  namespace: ${namespace}
  labels: { kubernetes.io/service-name: ${service}, endpointslice.kubernetes.io/managed-by: lab.xdplb.io }
addressType: IPv4
ports: [{ name: "${portName}", port: ${POD_PORT}, protocol: TCP }]
endpoints:
${endpoints.map((e) => `  - { addresses: [${e.pod.address}], nodeName: ${e.node}, targetRef: { kind: Pod, name: ${e.pod.name}, namespace: ${namespace} }, conditions: { ready: ${(e.state ?? 'ready') === 'ready'}, serving: true, terminating: ${e.state === 'terminating'} } }`).join('\n')}
`;
}

/**
 * When the worker's kube-proxy last wrote its rules (its /healthz
 * `lastUpdated`, ms since the epoch), or null while it does not answer. A
 * test that changes endpoints waits for a sync after the change before it
 * counts where connections land.
 */
export function proxySyncedAt(w: Worker): number | null {
  try {
    const h = JSON.parse(w.node.ns.run('curl', ['-sf', '--max-time', '1', 'http://127.0.0.1:10256/healthz'])) as { lastUpdated?: string };
    const t = Date.parse(h.lastUpdated ?? '');
    return Number.isNaN(t) ? null : t;
  } catch {
    return null;
  }
}

/** Routes each worker's pod range via its node on every other worker, as a cluster's pod network does (Cluster policy crosses nodes). */
export function routePods(workers: readonly Worker[]): void {
  for (const w of workers) for (const o of workers) if (o !== w) w.node.ns.ip('route', 'replace', `10.244.${o.index}.0/24`, 'via', o.node.address);
}
