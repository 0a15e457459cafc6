// cluster.ts: the whole system on one machine, for the end-to-end tests and
// `xdplb demo`: a real kube-apiserver and etcd, two operator replicas (host
// processes under a supervisor that restarts them, as a Deployment's kubelet
// would), load-balancer nodes running `xdplb agent --kubernetes` in their
// namespaces, backends serving HTTP and a client behind an ECMP route. Every
// piece is a real process talking over real sockets; stop() tears it all down.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startControlPlane, type CommandResult, type ControlPlane } from './control-plane.js';
import { LbTopology, watchJsonLogs, type AgentProcess, type AgentVipStatus, type BackendNode, type LbNode } from './topology.js';
import { ROOT, XDPLB } from './root.js';
import { vipTables } from './tables.js';
import type { Table } from '../src/core/maglev.js';

export const SYSTEM_NAMESPACE = 'xdplb-system';

export interface ClusterOptions {
  /** Short tag in namespace names (a few letters). */
  tag: string;
  nodes: number;
  backends: number;
  /** VIP addresses in 10.60.0.0/24 the backends serve. */
  vips: string[];
  /** Operator lease (default 5 s: a standby leads within seconds of a leader's death). */
  leaseSeconds?: number;
  /** Build missing control-plane binaries (progress on stderr). */
  build?: boolean;
  /** More flags for both operator replicas (e.g. --classless-services true). */
  operatorArgs?: string[];
  /** Progress lines. */
  progress?: (line: string) => void;
}

/**
 * A replica of the operator Deployment. When its process exits it is
 * replaced a second later by a new one with a new identity, as the
 * ReplicaSet replaces a deleted pod with a newly named one, until stopped.
 */
export class OperatorReplica {
  current!: AgentProcess;
  identity = '';
  restarts = 0;
  #stopping = false;

  constructor(readonly name: string, readonly args: readonly string[]) {
    this.#start();
  }

  #start(): void {
    this.identity = this.restarts === 0 ? this.name : `${this.name}-${this.restarts}`;
    const child = spawn(process.execPath, [XDPLB, 'operator', '--identity', this.identity, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.current = watchJsonLogs(child);
    void this.current.exited.then(() => {
      if (this.#stopping) return;
      this.restarts++;
      setTimeout(() => this.#stopping || this.#start(), 1000).unref();
    });
  }

  /** Kills the process (the supervisor restarts it). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const exited = this.current.exited;
    this.current.child.kill(signal);
    return exited;
  }

  /** Starts the replica again after stop() (a scale-up), with a new identity. */
  resume(): void {
    if (!this.#stopping) return;
    this.#stopping = false;
    this.restarts++;
    this.#start();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    const exited = this.current.exited;
    this.current.child.kill('SIGTERM');
    const timer = setTimeout(() => this.current.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

export class LocalCluster {
  readonly agents = new Map<string, AgentProcess>();
  readonly #kubeconfigs = new Map<string, string>();

  private constructor(
    readonly cp: ControlPlane,
    readonly topo: LbTopology,
    readonly operators: OperatorReplica[],
  ) {}

  static async start(o: ClusterOptions): Promise<LocalCluster> {
    const say = o.progress ?? (() => undefined);
    say('starting etcd and kube-apiserver, installing the CRDs');
    const cp = await startControlPlane({ crdDir: join(ROOT, 'crds'), apiserverArgs: ['--bind-address=0.0.0.0'], ...(o.build === undefined ? {} : { build: o.build }) });
    let topo: LbTopology | undefined;
    const operators: OperatorReplica[] = [];
    try {
      await cp.kubectl(['create', 'namespace', SYSTEM_NAMESPACE]);
      say('starting two operator replicas (leader election)');
      const args = ['--kubeconfig', cp.kubeconfigPath, '--namespace', SYSTEM_NAMESPACE, '--health-address', 'off', '--lease-seconds', String(o.leaseSeconds ?? 5), ...(o.operatorArgs ?? [])];
      operators.push(new OperatorReplica('operator-a', args), new OperatorReplica('operator-b', args));
      say(`building the network: ${o.nodes} load-balancer nodes, ${o.backends} backends, a client with an ECMP route`);
      topo = new LbTopology(o.tag, o.backends, { nodes: o.nodes, vips: o.vips });
      const cluster = new LocalCluster(cp, topo, operators);
      for (const node of topo.nodes) {
        cluster.#kubeconfigs.set(node.name, await topo.connectToApiserver(node, cp.server, cp.kubeconfigPath));
        say(`starting xdplb agent on ${node.name}`);
        cluster.startAgent(node);
      }
      return cluster;
    } catch (e) {
      for (const op of operators) await op.stop();
      topo?.destroy();
      await cp.stop();
      throw e;
    }
  }

  get nodes(): readonly LbNode[] {
    return this.topo.nodes;
  }

  get backends(): readonly BackendNode[] {
    return this.topo.backends;
  }

  /** Starts (or starts again) the node's agent in Kubernetes mode, with `extra` flags. */
  startAgent(node: LbNode, extra: readonly string[] = []): AgentProcess {
    const agent = this.topo.startAgent(null, ['--kubernetes', '--kubeconfig', this.#kubeconfigs.get(node.name)!, '--node-name', node.name, '--namespace', SYSTEM_NAMESPACE, ...extra], node);
    this.agents.set(node.name, agent);
    return agent;
  }

  agent(node: LbNode): AgentProcess {
    return this.agents.get(node.name)!;
  }

  kubectl(args: readonly string[], input?: string): Promise<CommandResult> {
    return this.cp.kubectl(args, input === undefined ? {} : { input });
  }

  /** kubectl apply; `timeoutMs` (default 60 s) for large batches: apply makes two requests per object. */
  async apply(yaml: string, timeoutMs?: number): Promise<void> {
    await this.cp.kubectl(['apply', '-f', '-'], { input: yaml, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
  }

  /** The operator replica holding the Lease, or null. */
  async leader(): Promise<string | null> {
    const r = await this.cp.kubectl(['-n', SYSTEM_NAMESPACE, 'get', 'lease', 'xdplb-operator', '-o', 'jsonpath={.spec.holderIdentity}'], { allowFailure: true });
    return r.exitCode === 0 && r.stdout !== '' ? r.stdout : null;
  }

  /** Tables the node's agent has programmed for `vip` (namespace/name) since it started, per its /status. */
  programmings(node: LbNode, vip: string): number {
    return this.topo.programmings(vip, node);
  }

  /**
   * Waits until the node's agent programmed `vip` (namespace/name) again after
   * `since` programmings, in a state `match` accepts (its /status, not its logs).
   */
  programmed(node: LbNode, vip: string, since: number, match: (v: AgentVipStatus) => boolean = () => true, timeoutMs = 20_000): Promise<AgentVipStatus> {
    return this.topo.programmed(vip, since, match, { node, timeoutMs });
  }

  /** The digest each node's kernel holds for `vip` (read back, per /status), by node name. */
  digests(vip: string): Record<string, string | null> {
    const out: Record<string, string | null> = {};
    for (const node of this.nodes) out[node.name] = this.topo.agentStatus(node)?.vips.find((v) => v.name === vip)?.digest ?? null;
    return out;
  }

  /** The table the operator published for a VIP (its newest whole table, assembled and digest-checked). */
  async publishedTable(namespace: string, vip: string): Promise<{ table: Table; generation: number; digest: string }> {
    const { published } = await vipTables(this.cp, namespace, vip);
    if (published === null) throw new Error(`no complete table published for ${namespace}/${vip}`);
    return published;
  }

  async stop(): Promise<void> {
    await Promise.all(this.operators.map((o) => o.stop()));
    this.topo.destroy();
    await this.cp.stop();
  }
}

/** YAML for a Backend object. */
export function backendYaml(namespace: string, b: BackendNode, weight: number, labels: Record<string, string>): string {
  return `apiVersion: xdplb.io/v1alpha1
kind: Backend
metadata: { name: ${b.name}, namespace: ${namespace}, labels: ${JSON.stringify(labels)} }
spec: { address: ${b.address}, weight: ${weight} }
---
`;
}
