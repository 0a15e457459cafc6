// agent-plane.ts: what the control-plane tests of agents in Kubernetes mode
// share: a real kube-apiserver and etcd reachable from network namespaces
// (bound to every address), the namespaces xdplb-system and shop, the
// operator running in the test's process (leader-elected as the chart runs
// it, or alone), and a lab topology whose first load-balancer node can
// reach the API server. XDPLB_TEST_LOG (a level) and XDPLB_TEST_LOG_FILE
// (a path) show the operator's log.
import { join } from 'node:path';
import { pino } from 'pino';
import { Kube, loadKubeConfig } from '../../src/kube/k8s.js';
import { Operator } from '../../src/operator/operator.js';
import { startControlPlane, type ControlPlane } from '../../lab/control-plane.js';
import { LbTopology, ROOT } from '../../lab/topology.js';

export interface AgentPlane {
  readonly cp: ControlPlane;
  readonly topo: LbTopology;
  /** The operator running now (null while stopped). */
  readonly operator: Operator | null;
  /** The kubeconfig the first load-balancer node reaches the API server with. */
  readonly lbKubeconfig: string;
  /** Stops the operator (a control plane without it). */
  stopOperator(): Promise<void>;
  /** Starts an operator replica as `identity` (after stopOperator). */
  startOperator(identity: string): Promise<void>;
  /** Stops the operator, tears the topology down and stops the control plane. */
  stop(): Promise<void>;
}

export async function startAgentPlane(tag: string, backends: number, o: { leaderElect: boolean }): Promise<AgentPlane> {
  const cp = await startControlPlane({ crdDir: join(ROOT, 'crds'), apiserverArgs: ['--bind-address=0.0.0.0'] });
  await cp.kubectl(['create', 'namespace', 'xdplb-system']);
  await cp.kubectl(['create', 'namespace', 'shop']);
  let operator: Operator | null = null;
  const startOperator = async (identity: string): Promise<void> => {
    const op = new Operator({
      kube: new Kube(loadKubeConfig(cp.kubeconfigPath)),
      namespace: 'xdplb-system',
      identity,
      leaderElect: o.leaderElect,
      leaseSeconds: o.leaderElect ? 5 : 15,
      renewMs: 1000,
      resyncSeconds: 30,
      workers: 2,
      log: pino({ level: process.env.XDPLB_TEST_LOG ?? 'silent' }, pino.destination(process.env.XDPLB_TEST_LOG_FILE ?? 1)),
    });
    await op.start();
    operator = op;
  };
  const stopOperator = async (): Promise<void> => {
    await operator?.stop().catch(() => undefined);
    operator = null;
  };
  await startOperator('op');
  const topo = new LbTopology(tag, backends);
  // The node reaches the API server over a veth to the host, through a forwarder on its loopback.
  const lbKubeconfig = await topo.connectToApiserver(topo.nodes[0]!, cp.server, cp.kubeconfigPath);
  return {
    cp,
    topo,
    get operator() {
      return operator;
    },
    lbKubeconfig,
    stopOperator,
    startOperator,
    async stop() {
      await stopOperator();
      topo.destroy();
      await cp.stop();
    },
  };
}
