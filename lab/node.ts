// node.ts: a real single-node Kubernetes cluster on this machine, for the
// tests that install the chart (test/node): the control plane of
// lab/control-plane.ts serving the node (ServiceAccount admission, the
// workload controllers, the `kubernetes` Service's endpoints at the node's
// address), containerd with its own root, state and socket, running the
// locally built pause image, kubelet (cgroupfs, cgroup v1), kube-proxy
// (nftables: pods reach the API server at the Service's ClusterIP) and
// kube-scheduler. Pods run on a CNI bridge whose gateway is the node's
// address. Images come from OCI archives imported into containerd
// (imagePullPolicy Never): no registry is reachable here.
//
// One node per machine (kubelet's cgroups and host paths are global). What the
// node changes on the machine is undone by one script (lab/node-teardown.ts)
// that stop(), the exit hook, a detached watchdog (test process killed) and
// the next start's sweep all run.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlPlaneCacheDir, controlPlaneVersions, startControlPlane, type CommandResult, type ControlPlane } from './control-plane.js';
import { containerdConfig, containerdSocket, cniConfig, kubeletConfig, kubeProxyConfig, type NodeLayout } from './node-config.js';
import { pauseImage, type ImageArchive } from './node-images.js';
import { KUBELET_HOST_PATHS, NODE_CGROUPS, NODE_SYSCTLS, nftTables, readSysctl, teardownScript } from './node-teardown.js';
import { pidAlive } from './process.js';
import { freePorts, run, Server } from './server.js';
import { until } from './wait.js';

const DIR_PREFIX = 'xdplb-node-';
const NODE_NAME = 'xdplb-node';
/** The pods' subnet; the node's address (its InternalIP, the API server's advertised one) is its gateway. */
const POD_CIDR = '10.244.0.0/24';
const NODE_ADDRESS = '10.244.0.1';

/** The controllers a node's pods need, besides the garbage collector and the namespace controller. */
export const NODE_CONTROLLERS = [
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
  'deployment-controller',
  'replicaset-controller',
  'daemonset-controller',
  'endpointslice-controller',
  'endpointslice-mirroring-controller',
  'disruption-controller',
  'pod-garbage-collector-controller',
  // Lifts the not-ready taint kubelet registers the node with, once it is Ready.
  'node-lifecycle-controller',
] as const;

/** Debian packages the node runs (scripts/bootstrap installs them, their services not started). */
export const NODE_PACKAGES = ['containerd', 'runc', 'containernetworking-plugins', 'iptables', 'nftables'] as const;

export interface NodeOptions {
  /** OCI archives to import into containerd besides the pause image (xdplb's image). */
  images?: readonly ImageArchive[];
  /** Labels the node registers with. */
  labels?: Record<string, string>;
  /** Build missing control-plane binaries (default: XDPLB_BUILD_CONTROL_PLANE=1). */
  build?: boolean;
  /** How long to wait for each piece (default 120 s). */
  startTimeoutMs?: number;
  progress?: (line: string) => void;
}

export interface KubeNode {
  readonly name: string;
  /** The node's InternalIP (on the CNI bridge, on the host). */
  readonly address: string;
  readonly cp: ControlPlane;
  readonly dir: string;
  /**
   * A directory on the host's bpffs for the agent's pins (the chart's
   * agent.pinDir), removed at teardown: pins outlive the agent pods by design.
   */
  readonly bpfPinDir: string;
  /** Seconds from the call to the node Ready with kube-proxy and kube-scheduler healthy. */
  readonly startSeconds: number;
  /** Seconds each step took (control plane, containerd, images, node Ready). */
  readonly steps: Record<string, number>;
  kubectl: ControlPlane['kubectl'];
  helm: ControlPlane['helm'];
  /** `ctr` against the node's containerd, namespace k8s.io. */
  ctr(args: readonly string[]): Promise<CommandResult>;
  /** Imports an OCI archive into containerd (for pods with imagePullPolicy Never). */
  importImage(image: ImageArchive): Promise<void>;
  /** The host pid of a container's first process (containerID as in a pod's status, with or without containerd://). */
  containerPid(containerId: string): number;
  logTail(which: 'containerd' | 'kubelet' | 'kube-proxy' | 'kube-scheduler', lines?: number): Promise<string>;
  /** Tears the node down (everything of lab/node-teardown.ts), then the control plane. Idempotent. */
  stop(): Promise<void>;
}

function binary(name: string): string {
  const path = join(controlPlaneCacheDir(), 'bin', `${name}-${controlPlaneVersions().kubernetes}`);
  if (!existsSync(path)) {
    throw new Error(`${path} missing: build the node's binaries once with scripts/build-control-plane --node`);
  }
  return path;
}

function checkPackages(): void {
  const missing = NODE_PACKAGES.filter((p) => {
    try {
      return !execFileSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).includes('install ok installed');
    } catch {
      return true;
    }
  });
  if (missing.length > 0) throw new Error(`Debian packages missing for the lab node: ${missing.join(' ')} (scripts/bootstrap installs them)`);
}

/** Runs the teardown of every node dir whose test process is gone; throws if a live one holds the machine. */
export function sweepStaleNodes(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name);
    if (m === null) continue;
    const dir = join(tmpdir(), name);
    if (pidAlive(Number(m[1]))) {
      if (Number(m[1]) === process.pid) continue;
      throw new Error(`a lab node of process ${m[1]} is running (${dir}): one node per machine`);
    }
    const script = join(dir, 'teardown.sh');
    if (existsSync(script)) execFileSync('bash', [script], { stdio: 'ignore' });
    else execFileSync('rm', ['-rf', dir]);
  }
}

// The watchdog: waits for the test process to die (or the dir to go), then runs the teardown.
const WATCHDOG = `
parent=$1 dir=$2
trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
while kill -0 "$parent" 2>/dev/null && [ -d "$dir" ]; do
  sleep 1 & sleeper=$!; wait "$sleeper"
done
[ -f "$dir/teardown.sh" ] && bash "$dir/teardown.sh"
`;

const live = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const dir of live) {
      try {
        execFileSync('bash', [join(dir, 'teardown.sh')], { stdio: 'ignore', timeout: 60_000 });
      } catch {
        // the watchdog tries again
      }
    }
  });
}

export async function startNode(opts: NodeOptions = {}): Promise<KubeNode> {
  const t0 = performance.now();
  const steps: Record<string, number> = {};
  let mark = t0;
  const step = (name: string): void => {
    const now = performance.now();
    steps[name] = Math.round(now - mark) / 1000;
    mark = now;
  };
  const say = opts.progress ?? (() => undefined);
  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  checkPackages();
  const bins = { kubelet: binary('kubelet'), proxy: binary('kube-proxy'), scheduler: binary('kube-scheduler') };
  sweepStaleNodes();
  for (const c of NODE_CGROUPS) {
    for (const h of readdirSync('/sys/fs/cgroup')) {
      if (existsSync(join('/sys/fs/cgroup', h, c))) throw new Error(`/sys/fs/cgroup/${h}/${c} exists: another kubelet or containerd runs pods on this machine`);
    }
  }
  const pause = await pauseImage();
  // The chart mounts the host's bpffs (systemd mounts it on most machines; not here at boot).
  if (!readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === '/sys/fs/bpf' && l.includes(' - bpf '))) {
    execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
  }
  // ...as a shared mount (systemd makes every mount shared; PID 1 here is not
  // systemd and mounts are private): containerd refuses the agent's
  // mountPropagation HostToContainer on a private one. Made private again at teardown.
  const bpffsPrivate = execFileSync('findmnt', ['-no', 'PROPAGATION', '/sys/fs/bpf'], { encoding: 'utf8' }).trim() === 'private';

  // What the node will change, recorded before anything runs.
  const dir = await mkdtemp(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  const bridge = `xlbn${process.pid}`.slice(0, 15);
  const sysctls: Record<string, string> = {};
  for (const k of NODE_SYSCTLS) {
    const v = readSysctl(k);
    if (v !== null) sysctls[k] = v;
  }
  const bpfPinDir = `/sys/fs/bpf/xdplb-node-${process.pid}`;
  const createdPaths = [...KUBELET_HOST_PATHS.filter((p) => !existsSync(p)), bpfPinDir];
  const teardown = join(dir, 'teardown.sh');
  await writeFile(teardown, teardownScript({ dir, bridge, sysctls, createdPaths, nftTablesBefore: nftTables(), privateMounts: bpffsPrivate ? ['/sys/fs/bpf'] : [] }), { mode: 0o755 });
  live.add(dir);
  installExitHook();
  const watchdog = spawn('bash', ['-c', WATCHDOG, 'xdplb-node-watchdog', String(process.pid), dir], { detached: true, stdio: 'ignore' });
  watchdog.unref();

  let cp: ControlPlane | undefined;
  const servers: Server[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      watchdog.kill('SIGTERM');
      // XDPLB_NODE_LOGS keeps the node's logs (containerd, kubelet, kube-proxy, kube-scheduler, the pods') for a post-mortem.
      const keep = process.env.XDPLB_NODE_LOGS;
      if (keep !== undefined && keep !== '') {
        const to = join(keep, `node-${Date.now()}`);
        await run('cp', ['-r', join(dir, 'logs'), to]);
        await run('cp', ['-r', join(dir, 'pod-logs'), join(to, 'pods')]);
      }
      await run('bash', [teardown], { timeoutMs: 120_000 });
      live.delete(dir);
      await cp?.stop();
    })());

  try {
    const logs = join(dir, 'logs');
    await Promise.all(['logs', 'cni/net.d', 'containerd', 'kubelet', 'pod-logs', 'scheduler'].map((d) => mkdir(join(dir, d), { recursive: true })));
    // The bridge and the node's address exist before anything advertises it.
    if (bpffsPrivate) execFileSync('mount', ['--make-shared', '/sys/fs/bpf']);
    execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
    execFileSync('ip', ['addr', 'add', `${NODE_ADDRESS}/24`, 'dev', bridge]);
    execFileSync('ip', ['link', 'set', bridge, 'up']);

    say('starting the control plane (etcd, kube-apiserver, kube-controller-manager)');
    cp = await startControlPlane({
      controllerManager: true,
      controllers: NODE_CONTROLLERS,
      serviceAccounts: true,
      nodeAddress: NODE_ADDRESS,
      startTimeoutMs: timeoutMs,
      ...(opts.build === undefined ? {} : { build: opts.build }),
    });
    step('controlPlane');
    const plane = cp;

    const [kubeletPort, kubeletHealthzPort, proxyHealthzPort, proxyMetricsPort, schedulerPort] =
      (await freePorts(5)) as [number, number, number, number, number];
    const layout: NodeLayout = {
      dir, name: NODE_NAME, address: NODE_ADDRESS, podCidr: POD_CIDR, bridge, pauseImage: pause.name,
      kubeletPort, kubeletHealthzPort, proxyHealthzPort, proxyMetricsPort,
      kubeconfig: plane.kubeconfigPath, caFile: plane.caFile,
    };
    const f = (n: string): string => join(dir, n);
    await Promise.all([
      writeFile(f('containerd/config.toml'), containerdConfig(layout)),
      writeFile(f('cni/net.d/10-xdplb-lab.conflist'), cniConfig(layout)),
      writeFile(f('kubelet/config.json'), kubeletConfig(layout)),
      writeFile(f('kube-proxy.json'), kubeProxyConfig(layout)),
    ]);

    const failure = async (what: string): Promise<Error> => {
      const parts = [`lab node: ${what} (dir ${dir})`];
      for (const s of servers) parts.push(`--- ${s.name} ${s.running ? 'running' : `exited ${JSON.stringify(s.exit)}`}, log tail:\n${await s.logTail(30)}`);
      return new Error(parts.join('\n'));
    };
    const waitFor = async (what: string, probe: () => Promise<boolean> | boolean): Promise<void> => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const dead = servers.find((s) => !s.running);
        if (dead !== undefined) throw await failure(`${dead.name} exited while waiting for ${what}`);
        if (await Promise.resolve().then(probe).catch(() => false)) return;
        if (Date.now() > end) throw await failure(`${what} not reached after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };

    say('starting containerd, importing the images');
    const containerd = new Server('containerd', 'containerd', ['--config', f('containerd/config.toml')], join(logs, 'containerd.log'));
    servers.push(containerd);
    const ctr = async (args: readonly string[]): Promise<CommandResult> => {
      const r = await run('ctr', ['--address', containerdSocket(dir), '--namespace', 'k8s.io', ...args], { timeoutMs: 300_000 });
      if (r.exitCode !== 0) throw new Error(`ctr ${args.join(' ')} exited ${r.exitCode}: ${r.stderr.trim()}`);
      return r;
    };
    await waitFor('containerd answering', async () => (await ctr(['version'])).exitCode === 0);
    step('containerd');
    const importImage = async (image: ImageArchive): Promise<void> => {
      await ctr(['images', 'import', image.archive]);
      const listed = (await ctr(['images', 'list', '-q'])).stdout.split('\n');
      if (!listed.includes(image.name)) throw new Error(`${image.archive} imported, but containerd lists no ${image.name}: ${listed.join(' ')}`);
    };
    for (const image of [pause, ...(opts.images ?? [])]) await importImage(image);
    step('images');

    say('starting kubelet, kube-proxy and kube-scheduler');
    const labels = Object.entries(opts.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    servers.push(new Server('kubelet', bins.kubelet, [
      `--config=${f('kubelet/config.json')}`,
      `--kubeconfig=${plane.kubeconfigPath}`,
      `--root-dir=${f('kubelet')}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${NODE_ADDRESS}`,
      ...(labels === '' ? [] : [`--node-labels=${labels}`]),
      '--v=1',
    ], join(logs, 'kubelet.log')));
    servers.push(new Server('kube-proxy', bins.proxy, [`--config=${f('kube-proxy.json')}`, '--v=1'], join(logs, 'kube-proxy.log')));
    servers.push(new Server('kube-scheduler', bins.scheduler, [
      `--kubeconfig=${plane.kubeconfigPath}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${schedulerPort}`,
      `--cert-dir=${f('scheduler')}`,
      `--client-ca-file=${plane.caFile}`,
      `--authentication-kubeconfig=${plane.kubeconfigPath}`,
      `--authorization-kubeconfig=${plane.kubeconfigPath}`,
      '--profiling=false',
    ], join(logs, 'kube-scheduler.log')));

    await waitFor(`node ${NODE_NAME} Ready`, async () => {
      const r = await plane.kubectl(['get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'], { allowFailure: true });
      return r.stdout === 'True';
    });
    await waitFor('kube-proxy healthy', async () => {
      const r = await run('curl', ['-sf', '--max-time', '2', `http://127.0.0.1:${proxyHealthzPort}/healthz`]);
      return r.exitCode === 0;
    });
    await waitFor('kube-scheduler healthy', async () => {
      const r = await run('curl', ['-sfk', '--max-time', '2', `https://127.0.0.1:${schedulerPort}/healthz`]);
      return r.exitCode === 0;
    });
    step('nodeReady');

    return {
      name: NODE_NAME,
      address: NODE_ADDRESS,
      cp: plane,
      dir,
      bpfPinDir,
      startSeconds: (performance.now() - t0) / 1000,
      steps,
      kubectl: plane.kubectl,
      helm: plane.helm,
      ctr,
      importImage,
      containerPid: (id: string) => {
        const bare = id.replace(/^containerd:\/\//, '');
        return Number(readFileSync(join(dir, 'containerd/state/io.containerd.runtime.v2.task/k8s.io', bare, 'init.pid'), 'utf8'));
      },
      logTail: async (which, lines = 40) => {
        const s = servers.find((x) => x.name === which);
        return s === undefined ? '' : s.logTail(lines);
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Waits until `kubectl get` of a resource, as JSON, satisfies `match`; resolves with the object. */
export async function waitForObject<T>(node: KubeNode, args: readonly string[], match: (o: T) => boolean, timeoutMs = 120_000): Promise<T> {
  let last = '';
  return until(`${args.join(' ')} in the wanted state`, async () => {
    const r = await node.kubectl(['get', ...args, '-o', 'json'], { allowFailure: true });
    last = r.stderr;
    if (r.exitCode !== 0) return null;
    const o = JSON.parse(r.stdout) as T;
    last = JSON.stringify((o as { status?: unknown }).status ?? o);
    return match(o) ? o : null;
  }, timeoutMs, 250).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}; last: ${last.slice(0, 3000)}`);
  });
}
