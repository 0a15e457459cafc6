// topology.ts: a load-balancer network in namespaces. A switch namespace
// holds a bridge; a client, one or more load-balancer nodes and N backends
// hang off it by veth. With several nodes the client reaches the VIPs over an
// ECMP route hashed on layer 4 (so different flows take different nodes), as
// a router in front of the nodes would. Backends run the HTTP backend of
// bin/, hold the VIPs on lo (l2dsr) and can run the decap program (ipip). An
// agent runs as a process inside a node's namespace, as a hostNetwork
// DaemonSet pod would, with its pins on a bpffs mounted for this topology (a
// hostPath in a cluster). destroy() leaves no namespace, link, pin or process.
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, macOf, sh, type Netns } from './netns.js';
import { pidAlive } from './process.js';
import type { AgentStatus } from '../src/agent/status.js';
import { LAB_BIN, ROOT, XDPLB } from './root.js';
import { until } from './wait.js';

export type { AgentStatus } from '../src/agent/status.js';
export type AgentVipStatus = AgentStatus['vips'][number];

export { ROOT, XDPLB } from './root.js';

export interface LbNode {
  /** lb1, lb2, ... (the agent's node name in Kubernetes mode). */
  readonly name: string;
  readonly ns: Netns;
  readonly address: string;
  readonly mac: string;
  /** Where this node's agent pins (its own directory on the topology's bpffs). */
  readonly pinDir: string;
}

/**
 * A real node's interface (lab/node.ts): a veth from the host's own
 * namespace to the switch, where an agent pod on the host network attaches.
 */
export interface HostPort {
  readonly ifname: string;
  readonly address: string;
  readonly mac: string;
}

export interface TopologyOptions {
  /** Load-balancer nodes in namespaces (default 1; 0 with a host port, addHostPort). */
  nodes?: number;
  /** VIP addresses the backends hold on lo (default one, 10.60.0.10); all in 10.60.0.0/24. */
  vips?: string[];
}

export interface BackendNode {
  readonly name: string;
  readonly ns: Netns;
  readonly address: string;
  readonly mac: string;
  server: ChildProcess | null;
  /** Resolves once the server started with the backend listens. */
  ready: Promise<void>;
}

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
  readonly exited: Promise<number | null>;
}

export interface LoadResult {
  ok: number;
  failed: number;
  byBackend: Record<string, number>;
  errors: Record<string, number>;
  trace?: { localPort: number; answer: string }[];
  /** Connections used (--keepalive). */
  connections?: number;
  ms: number;
  /** When the first and last failed connection ended (ms after the start), or null. */
  firstFailureAt?: number | null;
  lastFailureAt?: number | null;
}

const TOPOLOGY_ROOT = '/run/xdplb-test';

/** Unmounts and removes the pin directories of topologies whose process died (their namespaces go with Lab's sweep). */
function sweepStaleTopologies(): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(TOPOLOGY_ROOT);
  } catch {
    return;
  }
  for (const name of entries) {
    const m = /^(\d+)-/.exec(name);
    if (m === null || pidAlive(Number(m[1]))) continue;
    const dir = join(TOPOLOGY_ROOT, name);
    try {
      sh('umount', ['-R', join(dir, 'bpf')]);
    } catch {
      /* not mounted */
    }
    rmSync(dir, { recursive: true, force: true });
  }
  // Host ends of API server veths (vk<pid>n<node>): a namespace can outlive its run in the kernel
  // for a while, and with it this link and its address, which the next run's node would then share.
  for (const link of hostApiLinks()) if (!pidAlive(link.pid)) deleteLink(link.name);
}

/** The host ends of the API server veths of every run (connectToApiserver). */
function hostApiLinks(): { name: string; pid: number }[] {
  const out: { name: string; pid: number }[] = [];
  for (const l of JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]) {
    const m = /^vk(\d+)n\d+$/.exec(l.ifname);
    if (m !== null) out.push({ name: l.ifname, pid: Number(m[1]) });
  }
  return out;
}

function deleteLink(name: string): void {
  try {
    execFileSync('ip', ['link', 'del', name], { stdio: 'ignore' });
  } catch {
    /* gone with its namespace meanwhile */
  }
}

export class LbTopology {
  readonly lab = new Lab();
  readonly sw: Netns;
  readonly client: Netns;
  readonly nodes: LbNode[] = [];
  readonly backends: BackendNode[] = [];
  readonly vips: string[];
  readonly clientAddress = '10.50.0.100';
  /** The VIP range the client routes to the nodes. */
  readonly vipRange = '10.60.0.0/24';
  readonly dir: string;
  readonly pinDir: string;
  #agents: AgentProcess[] = [];
  #loads = new Set<ChildProcess>();
  /** Namespaces connected to the API server so far (connectToApiserver). */
  #apiLinks = 0;

  constructor(readonly tag: string, backendCount: number, options: TopologyOptions = {}) {
    this.vips = options.vips ?? ['10.60.0.10'];
    sweepStaleTopologies();
    this.dir = join(TOPOLOGY_ROOT, `${process.pid}-${tag}`);
    this.pinDir = join(this.dir, 'bpf');
    mkdirSync(this.pinDir, { recursive: true });
    sh('mount', ['-t', 'bpf', 'bpf', this.pinDir]);

    this.sw = this.lab.ns(`${tag}-sw`);
    this.sw.ip('link', 'add', 'br0', 'type', 'bridge');
    this.sw.ip('link', 'set', 'br0', 'up');
    this.client = this.lab.ns(`${tag}-cl`);
    this.lab.link(this.client, 'eth0', this.sw, 'p-client', 'br0');
    this.client.ip('addr', 'add', `${this.clientAddress}/24`, 'dev', 'eth0');
    // A veth hands the peer packets whose checksum is only partial (offload);
    // XDP forwards the raw frame, so the client computes checksums itself,
    // as a real NIC would before the wire.
    this.client.run('ethtool', ['-K', 'eth0', 'tx', 'off']);
    this.client.sysctl('net.ipv4.conf.all.rp_filter', 0);
    this.client.sysctl('net.ipv4.conf.eth0.rp_filter', 0);
    // ECMP on addresses, protocol and ports: each flow keeps one node, flows spread.
    this.client.sysctl('net.ipv4.fib_multipath_hash_policy', 1);

    for (let i = 1; i <= (options.nodes ?? 1); i++) this.#addNode(i);
    if (this.nodes.length > 0) this.routeVia(this.nodes);
    for (let i = 1; i <= backendCount; i++) this.addBackend(i);
  }

  /** The first node (single-node topologies). */
  get lb(): Netns {
    return this.nodes[0]!.ns;
  }

  get lbAddress(): string {
    return this.nodes[0]!.address;
  }

  /** The first VIP. */
  get vip(): string {
    return this.vips[0]!;
  }

  #addNode(i: number): void {
    const name = `lb${i}`;
    const ns = this.lab.ns(`${this.tag}-${name}`);
    this.lab.link(ns, 'eth0', this.sw, `p-${name}`, 'br0');
    const address = `10.50.0.${1 + i}`;
    ns.ip('addr', 'add', `${address}/24`, 'dev', 'eth0');
    // Native XDP_TX out of a veth is delivered only if the peer runs XDP too.
    this.sw.ip('link', 'set', 'dev', `p-${name}`, 'xdpdrv', 'obj', join(ROOT, 'bpf/build/xdp_pass.o'), 'sec', 'xdp');
    const pinDir = i === 1 ? this.pinDir : join(this.pinDir, 'nodes', name);
    mkdirSync(pinDir, { recursive: true });
    this.nodes.push({ name, ns, address, mac: macOf(ns, 'eth0'), pinDir });
  }

  /**
   * Routes the client's VIP range over these nodes: ECMP over several, a
   * plain route over one. A live flow moved to another node this way keeps
   * its 5-tuple, so a consistent node sends it to the same backend.
   */
  routeVia(nodes: readonly { readonly address: string }[]): void {
    const hops = nodes.length === 1 ? ['via', nodes[0]!.address] : nodes.flatMap((n) => ['nexthop', 'via', n.address]);
    this.client.ip('route', 'replace', this.vipRange, ...hops);
  }

  /**
   * A veth from the host namespace (named `ifname`, address 10.50.0.2) to the
   * switch, the client's VIP route through it: the interface a real node's
   * agent pod attaches to. Gone with the switch namespace at destroy().
   */
  addHostPort(ifname: string): HostPort {
    const peer = 'p-host';
    const tmp = `t${process.pid % 100000}h${Math.floor(Math.random() * 1e4)}`.slice(0, 15);
    sh('ip', ['link', 'add', ifname, 'type', 'veth', 'peer', 'name', tmp]);
    sh('ip', ['link', 'set', tmp, 'netns', this.sw.name]);
    this.sw.ip('link', 'set', tmp, 'name', peer);
    this.sw.ip('link', 'set', peer, 'master', 'br0');
    this.sw.ip('link', 'set', peer, 'up');
    const address = '10.50.0.2';
    sh('ip', ['addr', 'add', `${address}/24`, 'dev', ifname]);
    sh('ip', ['link', 'set', ifname, 'up']);
    // Native XDP_TX out of a veth is delivered only if the peer runs XDP too.
    this.sw.ip('link', 'set', 'dev', peer, 'xdpdrv', 'obj', join(ROOT, 'bpf/build/xdp_pass.o'), 'sec', 'xdp');
    const [info] = JSON.parse(sh('ip', ['-j', 'link', 'show', ifname])) as { address: string }[];
    const port = { ifname, address, mac: info!.address };
    this.routeVia([port]);
    return port;
  }

  addBackend(i: number): BackendNode {
    const name = `be${i}`;
    const ns = this.lab.ns(`${this.tag}-${name}`);
    this.lab.link(ns, 'eth0', this.sw, `p-${name}`, 'br0');
    const address = `10.50.0.${10 + i}`;
    ns.ip('addr', 'add', `${address}/24`, 'dev', 'eth0');
    for (const vip of this.vips) ns.ip('addr', 'add', `${vip}/32`, 'dev', 'lo');
    // The VIPs are on lo: never answer ARP for them, never use them as an ARP source.
    ns.sysctl('net.ipv4.conf.all.arp_ignore', 1);
    ns.sysctl('net.ipv4.conf.all.arp_announce', 2);
    ns.sysctl('net.ipv4.conf.all.rp_filter', 0);
    ns.sysctl('net.ipv4.conf.eth0.rp_filter', 0);
    const node: BackendNode = { name, ns, address, mac: macOf(ns, 'eth0'), server: null, ready: Promise.resolve() };
    this.backends.push(node);
    node.ready = this.startServer(node);
    node.ready.catch(() => undefined); // killed before it listened: the caller that awaits sees it
    return node;
  }

  startServer(b: BackendNode): Promise<void> {
    const child = b.ns.spawn(process.execPath, [join(LAB_BIN, 'http-server.mjs'), b.name, '80']);
    b.server = child;
    return new Promise((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`server ${b.name} exited ${String(code)}`)));
    });
  }

  stopServer(b: BackendNode): void {
    b.server?.kill('SIGKILL');
    b.server = null;
  }

  /**
   * Loads the decap program on a backend for the VIPs given (default all;
   * ipip and gue modes), and turns forwarding on, as on a Kubernetes node: a
   * GUE packet of a flow the backend does not know goes on to its second hop
   * through the backend's own stack.
   */
  decap(b: BackendNode, vips: readonly string[] = this.vips): void {
    b.ns.run(process.execPath, [XDPLB, 'decap', '--interface', 'eth0', ...vips.flatMap((v) => ['--vip', v]), '--pin-dir', join(this.pinDir, 'decap', b.name)]);
    b.ns.sysctl('net.ipv4.ip_forward', 1);
    b.ns.sysctl('net.ipv4.conf.all.send_redirects', 0);
    b.ns.sysctl('net.ipv4.conf.eth0.send_redirects', 0);
  }

  writeConfig(name: string, text: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, text);
    return path;
  }

  /**
   * Lets a node's processes reach an API server on the host's loopback (as a
   * hostNetwork pod reaches the cluster's): a veth to the host and a TCP
   * forwarder on the node's loopback, since the server's certificate is for
   * 127.0.0.1. Returns a kubeconfig path usable inside the node.
   */
  async connectToApiserver(node: { readonly name: string; readonly ns: Netns }, server: string, kubeconfigPath: string): Promise<string> {
    // One /30 per connected namespace (load-balancer nodes and backends alike), in the order connected.
    const index = this.#apiLinks++;
    const port = new URL(server).port;
    const host = `vk${process.pid}n${index}`;
    execFileSync('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', `${host}p`]);
    execFileSync('ip', ['link', 'set', `${host}p`, 'netns', node.ns.name]);
    execFileSync('ip', ['addr', 'add', `10.99.${index}.1/30`, 'dev', host]);
    execFileSync('ip', ['link', 'set', host, 'up']);
    node.ns.ip('addr', 'add', `10.99.${index}.2/30`, 'dev', `${host}p`);
    node.ns.ip('link', 'set', `${host}p`, 'up');
    const forward = node.ns.spawn(process.execPath, [join(LAB_BIN, 'tcp-forward.mjs'), '127.0.0.1', port, `10.99.${index}.1`, port]);
    await new Promise((r) => forward.stdout!.once('data', r));
    const kubeconfig = join(this.dir, `kubeconfig-${node.name}`);
    writeFileSync(kubeconfig, readFileSync(kubeconfigPath, 'utf8'));
    return kubeconfig;
  }

  /**
   * Starts `xdplb agent --role decap` on a backend, as on a worker node: the
   * decap program for the VIPs delivered through nodes, and its NodeReport
   * decap.<name>. Its /status is on 127.0.0.1:9478 in the backend.
   */
  startDecapRole(b: BackendNode, kubeconfig: string, namespace: string): AgentProcess {
    return this.#spawnAgent(b.ns, ['--role', 'decap', '--interface', 'auto', '--kubernetes', '--kubeconfig', kubeconfig, '--node-name', b.name, '--namespace', namespace, '--pin-dir', join(this.pinDir, 'decap-role', b.name), '--metrics-address', '127.0.0.1:9478', '--report-interval', '2', '--log-level', 'debug']);
  }

  /** The decap role's /status on a backend, or null while it does not answer. */
  decapStatus(b: BackendNode): { vips: string[]; reportedAt: number; packets: Record<string, number> } | null {
    return statusOf(b.ns, 9478);
  }

  /** Starts the agent in a node's namespace (default the first); config null for Kubernetes mode (flags in `extra`). */
  startAgent(config: string | null, extra: string[] = [], node: LbNode = this.nodes[0]!): AgentProcess {
    return this.#spawnAgent(node.ns, ['--interface', 'eth0', ...(config === null ? [] : ['--config', config]), '--pin-dir', node.pinDir, '--metrics-address', '127.0.0.1:9477', '--log-level', 'debug', ...extra]);
  }

  /** `xdplb agent` with `args` in `ns`, its JSON logs followed, stopped with the topology. */
  #spawnAgent(ns: Netns, args: readonly string[]): AgentProcess {
    const agent = watchJsonLogs(ns.spawn(process.execPath, [XDPLB, 'agent', ...args]));
    this.#agents.push(agent);
    return agent;
  }

  /** The agent's /status on a node (default the first), or null while it does not answer (not attached yet, or gone). */
  agentStatus(node: LbNode = this.nodes[0]!): AgentStatus | null {
    return statusOf(node.ns, 9477);
  }

  /** Polls the agent's /status until `match` returns a value (not null/false), which it resolves with. */
  waitForAgent<T>(what: string, match: (s: AgentStatus) => T | null | undefined | false, options: { node?: LbNode; timeoutMs?: number } = {}): Promise<T> {
    let last: AgentStatus | null = null;
    return until(
      `the agent: ${what}`,
      () => {
        last = this.agentStatus(options.node);
        return last === null ? null : match(last);
      },
      options.timeoutMs ?? 20_000,
      50,
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}; last status: ${JSON.stringify(last)?.slice(0, 2000)}`);
    });
  }

  /** Tables the node's agent has programmed for `vip` since it started (0 when none, or not answering). */
  programmings(vip: string, node: LbNode = this.nodes[0]!): number {
    return this.agentStatus(node)?.vips.find((v) => v.name === vip)?.programmings ?? 0;
  }

  /**
   * Waits until the node's agent programmed `vip` again after `since`
   * programmings, with a state that `match` accepts; resolves with the VIP's status.
   */
  programmed(vip: string, since: number, match: (v: AgentVipStatus) => boolean = () => true, options: { node?: LbNode; timeoutMs?: number } = {}): Promise<AgentVipStatus> {
    return this.waitForAgent(`${vip} programmed after ${since} with the wanted state`, (s) => {
      const v = s.vips.find((x) => x.name === vip);
      return v !== undefined && v.programmings > since && match(v) ? v : null;
    }, options);
  }

  /** A Prometheus sample of a node's agent: sum of the metric's series whose labels include `labels`. */
  metric(node: LbNode, name: string, labels: Record<string, string> = {}): number {
    return sampleSum(node.ns.run('curl', ['-sf', 'http://127.0.0.1:9477/metrics']), name, labels);
  }

  /** Runs the load generator in the client namespace to completion. */
  async load(args: string[], vip: string = this.vip): Promise<LoadResult> {
    const child = this.client.spawn(process.execPath, [join(LAB_BIN, 'load.mjs'), `http://${vip}/`, ...args]);
    return collect(child);
  }

  /**
   * Starts paced load (new connections per second) in the client namespace;
   * stop() ends it and returns the result. With `onReport`, the generator
   * prints running totals every `reportMs` and each reaches the callback.
   */
  async startLoad(rate: number, opts: { vip?: string; reportMs?: number; onReport?: (r: LoadResult & { t: number }) => void } = {}): Promise<{ stop(): Promise<LoadResult> }> {
    const extra = opts.reportMs === undefined ? [] : ['--report-ms', String(opts.reportMs)];
    const child = this.client.spawn(process.execPath, [join(LAB_BIN, 'load.mjs'), `http://${opts.vip ?? this.vip}/`, '--rate', String(rate), ...extra]);
    this.#loads.add(child);
    const result = collect(child, opts.onReport);
    // A load never stopped (a test failed first) is killed at teardown: not an unhandled rejection.
    result.catch(() => undefined);
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    return {
      stop: async () => {
        child.kill('SIGTERM');
        this.#loads.delete(child);
        return result;
      },
    };
  }

  destroy(): void {
    for (const a of this.#agents) a.child.kill('SIGKILL');
    for (const l of this.#loads) l.kill('SIGKILL');
    this.lab.destroy();
    for (const link of hostApiLinks()) if (link.pid === process.pid) deleteLink(link.name);
    try {
      sh('umount', ['-R', this.pinDir]);
    } catch {
      /* not mounted */
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Collects a child's JSON log lines (pino), kept for reports and failure
 * messages; tests wait on state (/status, /metrics, the API), not on log text.
 * XDPLB_LAB_LOGS=dir also appends them to dir/<pid>.log, to read after a run.
 */
export function watchJsonLogs(child: ChildProcess): AgentProcess {
  const logs: Record<string, unknown>[] = [];
  let buffered = '';
  const dir = process.env.XDPLB_LAB_LOGS;
  if (dir !== undefined) mkdirSync(dir, { recursive: true });
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    if (dir !== undefined) appendFileSync(join(dir, `${child.pid}.log`), chunk);
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        entry = { msg: line };
      }
      logs.push(entry);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    logs,
    exited,
  };
}

function collect(child: ChildProcess, onReport?: (r: LoadResult & { t: number }) => void): Promise<LoadResult> {
  let out = '';
  let err = '';
  let seen = 0;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if (onReport === undefined) return;
    let nl: number;
    while ((nl = out.indexOf('\n', seen)) >= 0) {
      const line = out.slice(seen, nl);
      seen = nl + 1;
      if (line.startsWith('{"t":')) onReport(JSON.parse(line) as LoadResult & { t: number });
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((resolve, reject) => {
    child.once('exit', () => {
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(line) as LoadResult);
      } catch {
        reject(new Error(`load generator printed no result: ${out} ${err}`));
      }
    });
  });
}

/** In Prometheus text `text`: the sum of metric `name`'s series whose labels include `labels`. */
export function sampleSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** The /status an agent serves on 127.0.0.1:`port` in `ns`, or null while it does not answer. */
function statusOf<T>(ns: Netns, port: number): T | null {
  try {
    return JSON.parse(ns.run('curl', ['-sf', '--max-time', '2', `http://127.0.0.1:${port}/status`])) as T;
  } catch {
    return null;
  }
}
