// control-plane.ts: a real Kubernetes control plane for tests and the demo: etcd and
// kube-apiserver on loopback (random free ports, throwaway certificates made
// with openssl, RBAC on), optionally kube-controller-manager running only the
// garbage collector and the namespace controller, plus kubectl and helm
// pointed at it. One per test suite: start it in beforeAll, stop() it in afterAll.
//
// The binaries are the pinned ones scripts/build-control-plane builds and
// caches outside the repo ($XDPLB_CACHE_DIR/bin/<name>-<version>, pins in
// tools/k8s-build/versions.env).
//
// Nothing outlives the test process: everything lives in one temp dir
// (xdplb-cp-<pid>-*), stop() kills the servers and removes it, a process 'exit'
// hook does the same synchronously, a detached watchdog does it when the test
// process dies without running hooks (SIGKILL), and each start sweeps what a
// dead earlier test process left behind.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive } from './process.js';
import { ROOT } from './root.js';
import { freePorts, processesUsing, run, Server, type CommandOptions, type CommandResult } from './server.js';

export { processesUsing, type CommandOptions, type CommandResult } from './server.js';

const BUILD_SCRIPT = join(ROOT, 'scripts/build-control-plane');
const VERSIONS_FILE = join(ROOT, 'tools/k8s-build/versions.env');
const DIR_PREFIX = 'xdplb-cp-';

// --- binaries ------------------------------------------------------------------

export interface ControlPlaneVersions {
  kubernetes: string;
  etcd: string;
  helm: string;
}

export interface ControlPlaneBinaries {
  kubeApiserver: string;
  /** Only checked to exist when a control plane with `controllerManager` asks for it. */
  kubeControllerManager: string;
  kubectl: string;
  etcd: string;
  helm: string;
  versions: ControlPlaneVersions;
}

/** The pins of tools/k8s-build/versions.env. */
export function controlPlaneVersions(): ControlPlaneVersions {
  const vars = new Map<string, string>();
  for (const line of readFileSync(VERSIONS_FILE, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(\S+)\s*$/.exec(line);
    if (m !== null) vars.set(m[1]!, m[2]!);
  }
  const get = (k: string): string => {
    const v = vars.get(k);
    if (v === undefined) throw new Error(`${VERSIONS_FILE}: no ${k}`);
    return v;
  };
  return { kubernetes: get('KUBERNETES_VERSION'), etcd: get('ETCD_VERSION'), helm: get('HELM_VERSION') };
}

/** The cache root, as scripts/build-control-plane computes it. */
export function controlPlaneCacheDir(): string {
  const env = process.env.XDPLB_CACHE_DIR;
  if (env !== undefined && env !== '') return env;
  if (process.getuid?.() === 0) return '/var/cache/xdplb';
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'xdplb');
}

function isExecutableFile(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

export interface BinaryOptions {
  /** Also require kube-controller-manager (default false: a cache built before it was added still serves). */
  controllerManager?: boolean;
}

/** Paths of the cached binaries; throws, saying how to build them, when one is missing. */
export function findControlPlaneBinaries(opts: BinaryOptions = {}): ControlPlaneBinaries {
  const versions = controlPlaneVersions();
  const bin = join(controlPlaneCacheDir(), 'bin');
  const b: ControlPlaneBinaries = {
    kubeApiserver: join(bin, `kube-apiserver-${versions.kubernetes}`),
    kubeControllerManager: join(bin, `kube-controller-manager-${versions.kubernetes}`),
    kubectl: join(bin, `kubectl-${versions.kubernetes}`),
    etcd: join(bin, `etcd-${versions.etcd}`),
    helm: join(bin, `helm-${versions.helm}`),
    versions,
  };
  const needed = [b.kubeApiserver, b.kubectl, b.etcd, b.helm];
  if (opts.controllerManager === true) needed.push(b.kubeControllerManager);
  const missing = needed.filter((p) => !isExecutableFile(p));
  if (missing.length > 0) {
    throw new Error(
      `control-plane binaries missing: ${missing.join(', ')}.\n` +
        `Build them once, as root (a cold build from the Go module proxy takes about 15 min on 2 cores):\n` +
        `  scripts/build-control-plane\n` +
        `or set XDPLB_BUILD_CONTROL_PLANE=1 to let the tests build them. ` +
        `XDPLB_CACHE_DIR moves the cache (now ${controlPlaneCacheDir()}).`,
    );
  }
  return b;
}

/**
 * Like findControlPlaneBinaries, but when a binary is missing and `build` is
 * true (default: XDPLB_BUILD_CONTROL_PLANE=1) runs scripts/build-control-plane
 * first, its progress going to stderr. A cold build takes about 15 min (2
 * cores): give the calling hook a timeout to match.
 */
export async function ensureControlPlaneBinaries(
  opts: { build?: boolean } & BinaryOptions = {},
): Promise<ControlPlaneBinaries> {
  const find = (): ControlPlaneBinaries =>
    findControlPlaneBinaries(opts.controllerManager === undefined ? {} : { controllerManager: opts.controllerManager });
  try {
    return find();
  } catch (e) {
    if (!(opts.build ?? process.env.XDPLB_BUILD_CONTROL_PLANE === '1')) throw e;
  }
  const res = await run(BUILD_SCRIPT, [], { stdio: 'inherit-stderr' });
  if (res.exitCode !== 0) throw new Error(`scripts/build-control-plane failed (exit ${res.exitCode})`);
  return find();
}

// --- processes -----------------------------------------------------------------

/** Kills what dead test processes left behind (their pid is in the temp dir's name). */
export function sweepStaleControlPlanes(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of entries) {
    const m = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name);
    if (m === null || pidAlive(Number(m[1]))) continue;
    const dir = join(tmpdir(), name);
    for (const pid of processesUsing(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

// Control planes of this process, killed synchronously if it exits without stop().
const live = new Set<{ servers: Server[]; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const cp of live) {
      for (const s of cp.servers) if (s.running) s.child.kill('SIGKILL');
      rmSync(cp.dir, { recursive: true, force: true });
    }
  });
}

// The watchdog: a detached shell that waits for the test process to die (or the
// temp dir to disappear), then SIGKILLs every process whose command line names
// a path in the temp dir and removes the dir. stop() ends it with SIGTERM.
const WATCHDOG = `
parent=$1 dir=$2
trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
while kill -0 "$parent" 2>/dev/null && [ -d "$dir" ]; do
  sleep 1 & sleeper=$!; wait "$sleeper"
done
victims() {
  local p args
  for p in /proc/[0-9]*; do
    mapfile -d '' args < "$p/cmdline" 2>/dev/null || continue
    [[ "\${args[*]}" == *"$dir/"* ]] && echo "\${p#/proc/}"
  done
}
# Throwaway data: no graceful shutdown needed.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  v=$(victims); [ -z "$v" ] && break
  kill -KILL $v 2>/dev/null; sleep 0.2
done
rm -rf "$dir"
`;

// --- certificates --------------------------------------------------------------

const OPENSSL_CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;

interface Pki {
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  saKeyFile: string;
  saPubFile: string;
}

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args, { timeoutMs: 30_000 });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** CA, serving cert (127.0.0.1, localhost, the `kubernetes` Service's names, extraIps), admin client cert (system:masters), SA key pair: EC P-256, valid 2 days. */
async function makePki(dir: string, extraIps: readonly string[] = []): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  const f = (n: string): string => join(dir, n);
  const cnf = f('openssl.cnf');
  await writeFile(cnf, OPENSSL_CONFIG.replace('subjectAltName = IP:127.0.0.1,', `subjectAltName = ${extraIps.map((ip) => `IP:${ip},`).join('')}IP:127.0.0.1,`));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2'];
  await openssl(['req', '-x509', '-config', cnf, '-extensions', 'ca', ...ec,
    '-keyout', f('ca.key'), '-out', f('ca.crt'), '-subj', '/CN=xdplb-test-ca']);
  const signed = ['req', '-x509', '-config', cnf, '-CA', f('ca.crt'), '-CAkey', f('ca.key'), ...ec];
  await Promise.all([
    openssl([...signed, '-extensions', 'server', '-keyout', f('apiserver.key'), '-out', f('apiserver.crt'),
      '-subj', '/CN=kube-apiserver']),
    openssl([...signed, '-extensions', 'client', '-keyout', f('admin.key'), '-out', f('admin.crt'),
      '-subj', '/O=system:masters/CN=xdplb-admin']),
    (async () => {
      await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f('sa.key')]);
      await openssl(['pkey', '-in', f('sa.key'), '-pubout', '-out', f('sa.pub')]);
    })(),
  ]);
  return {
    caFile: f('ca.crt'),
    serverCertFile: f('apiserver.crt'),
    serverKeyFile: f('apiserver.key'),
    clientCertFile: f('admin.crt'),
    clientKeyFile: f('admin.key'),
    saKeyFile: f('sa.key'),
    saPubFile: f('sa.pub'),
  };
}

// --- the control plane -----------------------------------------------------------

export interface ControlPlaneOptions {
  /** Apply the CRDs in this directory (recursively) and wait until they are Established. */
  crdDir?: string;
  /** Extra kube-apiserver flags (appended; a later flag wins). */
  apiserverArgs?: string[];
  /**
   * Also run kube-controller-manager (default false) with only the garbage
   * collector (ownerReferences) and the namespace controller (deleting a
   * namespace empties it), as the admin, leader election off. It starts after
   * the CRDs of `crdDir`, so the garbage collector watches them at once; for
   * CRDs installed later it needs up to its 30 s discovery resync.
   */
  controllerManager?: boolean;
  /**
   * More kube-controller-manager controllers (its --controllers names, like
   * `deployment`), besides the garbage collector and the namespace
   * controller; only with `controllerManager`. A real node's pods need the
   * workload controllers (lab/node.ts lists them).
   */
  controllers?: readonly string[];
  /**
   * Serve a real node (lab/node.ts) at this address of the machine (default:
   * loopback only): kube-apiserver listens on every address and advertises
   * this one, so the `kubernetes` Service's endpoints are kept (lease
   * reconciler) and pods reach it through kube-proxy; its certificate names
   * the address; it calls kubelets at their InternalIP with the admin's
   * client certificate (logs, exec).
   */
  nodeAddress?: string;
  /**
   * ServiceAccount admission on (default off: without a controller manager
   * nobody creates the `default` service accounts). A pod then gets its
   * service account's token and the cluster CA mounted, as in a real cluster;
   * the controller manager, when it runs, gets the keys and CA it needs to
   * publish them.
   */
  serviceAccounts?: boolean;
  /** Dual-stack Services: an IPv6 service range beside the IPv4 one (default IPv4 only). */
  dualStack?: boolean;
  /** How long to wait for etcd, /readyz and the controller manager's /healthz (default 90 s). */
  startTimeoutMs?: number;
  /** Build missing binaries first (default: XDPLB_BUILD_CONTROL_PLANE=1). */
  build?: boolean;
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
}

export interface HttpResult {
  status: number;
  body: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  kubeconfigPath: string;
  caFile: string;
  /** Admin client certificate and key (user xdplb-admin, group system:masters). */
  clientCertFile: string;
  clientKeyFile: string;
  /** http://127.0.0.1:<port> */
  etcdEndpoint: string;
  /** https://127.0.0.1:<port> of kube-controller-manager (admin cert; CA caFile), when started. */
  controllerManagerServer?: string;
  /** The temp dir holding everything (data, certs, logs); removed by stop(). */
  dir: string;
  pids: { etcd: number; apiserver: number; controllerManager?: number; watchdog: number };
  binaries: ControlPlaneBinaries;
  /** Seconds from the call to /readyz answering ok (and CRDs established, and the controller manager healthy). */
  startSeconds: number;
  /** Environment for kubectl/helm run by hand: KUBECONFIG, caches and helm dirs inside `dir`. */
  env: Record<string, string>;
  /** Runs kubectl as the admin; throws on a non-zero exit unless allowFailure. */
  kubectl(args: readonly string[], opts?: CommandOptions): Promise<CommandResult>;
  /** Runs helm as the admin; throws on a non-zero exit unless allowFailure. */
  helm(args: readonly string[], opts?: CommandOptions): Promise<CommandResult>;
  /**
   * An HTTPS request to the API server as the admin (a body that is not a
   * string is sent as JSON). Add Impersonate-User/-Group headers to act as
   * someone else.
   */
  request(method: string, path: string, opts?: RequestOptions): Promise<HttpResult>;
  /** Applies every CRD under `dir` (server-side) and waits until they are Established. */
  installCrds(dir: string): Promise<string[]>;
  /** The last lines of the etcd, kube-apiserver or kube-controller-manager log ('' when it is not running). */
  logTail(which: 'etcd' | 'apiserver' | 'controller-manager', lines?: number): Promise<string>;
  /** Stops kube-apiserver alone (SIGTERM), as an outage would; etcd keeps the data. */
  stopApiserver(): Promise<void>;
  /** Starts kube-apiserver again, same port and flags, and waits for /readyz. */
  startApiserver(): Promise<void>;
  /** Kills the servers and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function httpGet(url: string): Promise<HttpResult> {
  return new Promise((res, rej) => {
    const req = httpRequest(url, { agent: false, timeout: 2000 }, (resp) => {
      let body = '';
      resp.setEncoding('utf8').on('data', (d: string) => (body += d));
      resp.on('end', () => res({ status: resp.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

// The controllers kube-controller-manager runs: its --controllers name (an alias
// the project promises to keep) and the name of its /healthz check.
const KCM_CONTROLLERS = [
  { flag: 'garbagecollector', check: 'garbage-collector-controller' },
  { flag: 'namespace', check: 'namespace-controller' },
] as const;

class StartError extends Error {
  readonly portClash: boolean;
  constructor(message: string, portClash: boolean) {
    super(message);
    this.portClash = portClash;
  }
}

/**
 * Starts etcd and kube-apiserver on loopback and waits for /readyz, installs
 * crdDir, then, if asked, starts kube-controller-manager and waits for its
 * /healthz. Call stop() in afterAll; if the test process dies first, the exit
 * hook and the watchdog clean up.
 */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = performance.now();
  const binaries = await ensureControlPlaneBinaries({
    ...(opts.build === undefined ? {} : { build: opts.build }),
    controllerManager: opts.controllerManager === true,
  });
  sweepStaleControlPlanes();
  installExitHook();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binaries, opts, t0);
    } catch (e) {
      // A port picked as free can be taken before the server binds it: retry with new ones.
      if (!(e instanceof StartError && e.portClash && attempt < 3)) throw e;
    }
  }
}

async function startOnce(binaries: ControlPlaneBinaries, opts: ControlPlaneOptions, t0: number): Promise<ControlPlane> {
  const timeoutMs = opts.startTimeoutMs ?? 90_000;
  const deadline = Date.now() + timeoutMs;
  const dir = await mkdtemp(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  const servers: Server[] = [];
  const entry = { servers, dir };
  live.add(entry);
  const watchdog = spawn('bash', ['-c', WATCHDOG, 'xdplb-cp-watchdog', String(process.pid), dir], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();
  const watchdogGone = new Promise<void>((res) => {
    watchdog.on('exit', () => res());
    watchdog.on('error', () => res());
  });
  let agent: Agent | undefined;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      agent?.destroy();
      // In reverse start order: the controller manager, kube-apiserver (it would
      // keep retrying etcd), then etcd.
      for (const s of [...servers].reverse()) await s.stop(5_000);
      watchdog.kill('SIGTERM');
      await Promise.race([watchdogGone, sleep(2_000)]);
      await rm(dir, { recursive: true, force: true });
      live.delete(entry);
    })());

  try {
    const [etcdClientPort, etcdPeerPort, apiPort, kcmPort] = (await freePorts(4)) as [number, number, number, number];
    const etcdEndpoint = `http://127.0.0.1:${etcdClientPort}`;
    const peer = `http://127.0.0.1:${etcdPeerPort}`;
    const logs = join(dir, 'logs');
    await mkdir(logs);
    const etcd = new Server('etcd', binaries.etcd, [
      '--name=xdplb-test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdEndpoint}`,
      `--advertise-client-urls=${etcdEndpoint}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=xdplb-test=${peer}`,
      '--initial-cluster-state=new',
      '--unsafe-no-fsync', // throwaway data: skip fsync, much faster on a shared disk
      '--log-level=warn',
    ], join(logs, 'etcd.log'));
    servers.push(etcd);

    // Certificates are made while etcd starts.
    const pki = await makePki(join(dir, 'pki'), opts.nodeAddress === undefined ? [] : [opts.nodeAddress]);
    const failure = async (what: string): Promise<StartError> => {
      const parts = [`control plane: ${what} (dir ${dir})`];
      let clash = false;
      for (const s of servers) {
        const tail = await s.logTail();
        clash ||= /address already in use/.test(tail);
        parts.push(`--- ${s.name} ${s.exit === null ? 'running' : `exited ${JSON.stringify(s.exit)}`}, log tail:\n${tail}`);
      }
      return new StartError(parts.join('\n'), clash);
    };

    for (;;) {
      if (!etcd.running) throw await failure('etcd exited');
      if (Date.now() > deadline) throw await failure(`etcd not healthy after ${timeoutMs} ms`);
      const h = await httpGet(`${etcdEndpoint}/health`).catch(() => undefined);
      if (h?.status === 200 && h.body.includes('"health":"true"')) break;
      await sleep(50);
    }

    const apiserverArgv = [
      `--etcd-servers=${etcdEndpoint}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.serverCertFile}`,
      `--tls-private-key-file=${pki.serverKeyFile}`,
      `--client-ca-file=${pki.caFile}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.saPubFile}`,
      `--service-account-signing-key-file=${pki.saKeyFile}`,
      `--service-cluster-ip-range=10.96.0.0/16${opts.dualStack === true ? ',fd00:10:96::/112' : ''}`,
      '--authorization-mode=RBAC',
      // Privileged pods (the agent DaemonSet) must be creatable.
      '--allow-privileged=true',
      // No controller-manager creates the `default` service accounts: without
      // this, pods could not be created. Tokens still work (TokenRequest).
      ...(opts.serviceAccounts === true ? [] : ['--disable-admission-plugins=ServiceAccount']),
      // The endpoints of the `kubernetes` service would be 127.0.0.1, which
      // validation rejects: don't maintain them (unless a node's address is advertised).
      ...(opts.nodeAddress === undefined
        ? ['--endpoint-reconciler-type=none']
        : [
          '--bind-address=0.0.0.0',
          `--advertise-address=${opts.nodeAddress}`,
          '--endpoint-reconciler-type=lease',
          // The node's name resolves to 127.0.0.1 here: logs and exec go to its InternalIP.
          '--kubelet-preferred-address-types=InternalIP',
          `--kubelet-client-certificate=${pki.clientCertFile}`,
          `--kubelet-client-key=${pki.clientKeyFile}`,
        ]),
      '--profiling=false',
      ...(opts.apiserverArgs ?? []),
    ];
    let apiserver = new Server('kube-apiserver', binaries.kubeApiserver, apiserverArgv, join(logs, 'kube-apiserver.log'));
    servers.push(apiserver);

    const server = `https://127.0.0.1:${apiPort}`;
    const [ca, cert, key] = await Promise.all(
      [pki.caFile, pki.clientCertFile, pki.clientKeyFile].map((p) => readFile(p)),
    ) as [Buffer, Buffer, Buffer];
    agent = new Agent({ ca, cert, key, keepAlive: false });
    const httpsAgent = agent;
    const requestTo = (base: string) => (method: string, path: string, o: RequestOptions = {}): Promise<HttpResult> =>
      new Promise((res, rej) => {
        const payload =
          o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
        const req = httpsRequest(`${base}${path}`, {
          method,
          agent: httpsAgent,
          timeout: 10_000,
          headers: { ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...o.headers },
        }, (resp) => {
          let data = '';
          resp.setEncoding('utf8').on('data', (d: string) => (data += d));
          resp.on('end', () => res({ status: resp.statusCode ?? 0, body: data }));
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
        req.on('error', rej);
        req.end(payload);
      });
    const request = requestTo(server);

    const apiserverReady = async (until: number): Promise<void> => {
      for (;;) {
        if (!etcd.running) throw await failure('etcd exited');
        if (!apiserver.running) throw await failure('kube-apiserver exited');
        if (Date.now() > until) throw await failure(`kube-apiserver not ready after ${timeoutMs} ms`);
        const r = await request('GET', '/readyz').catch(() => undefined);
        if (r?.status === 200) break;
        await sleep(100);
      }
    };
    await apiserverReady(deadline);

    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'xdplb-test', cluster: { server, 'certificate-authority': pki.caFile } }],
      users: [{ name: 'xdplb-admin', user: { 'client-certificate': pki.clientCertFile, 'client-key': pki.clientKeyFile } }],
      contexts: [{ name: 'xdplb-test', context: { cluster: 'xdplb-test', user: 'xdplb-admin', namespace: 'default' } }],
      'current-context': 'xdplb-test',
    }, null, 2));
    const env: Record<string, string> = {
      KUBECONFIG: kubeconfigPath,
      KUBECACHEDIR: join(dir, 'kube-cache'),
      KUBERC: 'off',
      HELM_CACHE_HOME: join(dir, 'helm/cache'),
      HELM_CONFIG_HOME: join(dir, 'helm/config'),
      HELM_DATA_HOME: join(dir, 'helm/data'),
    };
    const tool = (bin: string, name: string) =>
      async (args: readonly string[], o: CommandOptions = {}): Promise<CommandResult> => {
        const r = await run(bin, args, {
          env: { ...process.env, ...env, ...o.env },
          timeoutMs: o.timeoutMs ?? 60_000,
          ...(o.input === undefined ? {} : { input: o.input }),
        });
        if (r.exitCode !== 0 && o.allowFailure !== true) {
          throw new Error(`${name} ${args.join(' ')} exited ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`);
        }
        return r;
      };
    const kubectl = tool(binaries.kubectl, 'kubectl');

    const installCrds = async (crdDir: string): Promise<string[]> => {
      const hasFiles = (d: string): boolean =>
        readdirSync(d, { withFileTypes: true }).some((e) =>
          e.isDirectory() ? hasFiles(join(d, e.name)) : /\.(ya?ml|json)$/.test(e.name));
      if (!existsSync(crdDir) || !hasFiles(crdDir)) return [];
      const applied = await kubectl(['apply', '--server-side', '--force-conflicts', '-R', '-f', crdDir, '-o', 'name']);
      const names = applied.stdout.split('\n').map((l) => l.trim())
        .filter((l) => l.startsWith('customresourcedefinition.apiextensions.k8s.io/'));
      if (names.length > 0) {
        await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...names]);
      }
      return names;
    };
    if (opts.crdDir !== undefined) await installCrds(opts.crdDir);

    let controllerManager: Server | undefined;
    let controllerManagerServer: string | undefined;
    if (opts.controllerManager === true) {
      controllerManager = new Server('kube-controller-manager', binaries.kubeControllerManager, [
        `--kubeconfig=${kubeconfigPath}`, // the admin: system:masters may do every controller's job
        `--controllers=${[...KCM_CONTROLLERS.map((c) => c.flag), ...(opts.controllers ?? [])].join(',')}`,
        '--use-service-account-credentials=false',
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`, // 0 would turn HTTPS (and /healthz) off, not pick a port
        // The apiserver's serving certificate is for 127.0.0.1 too: clients verify it with caFile.
        `--tls-cert-file=${pki.serverCertFile}`,
        `--tls-private-key-file=${pki.serverKeyFile}`,
        // Client certificates of this CA authenticate; system:masters (the admin) is always
        // authorized, anyone may read /healthz, /readyz, /livez. No delegated authn/authz lookups.
        `--client-ca-file=${pki.caFile}`,
        // Service account tokens of Secrets, and the CA every namespace's kube-root-ca.crt publishes.
        ...(opts.serviceAccounts === true
          ? [`--service-account-private-key-file=${pki.saKeyFile}`, `--root-ca-file=${pki.caFile}`]
          : []),
        '--profiling=false',
      ], join(logs, 'kube-controller-manager.log'));
      servers.push(controllerManager);
      controllerManagerServer = `https://127.0.0.1:${kcmPort}`;
      // /healthz lists a check per controller once they are built, just before they run.
      const kcmRequest = requestTo(controllerManagerServer);
      for (;;) {
        if (!controllerManager.running) throw await failure('kube-controller-manager exited');
        if (!apiserver.running) throw await failure('kube-apiserver exited');
        if (Date.now() > deadline) throw await failure(`kube-controller-manager not healthy after ${timeoutMs} ms`);
        const r = await kcmRequest('GET', '/healthz?verbose').catch(() => undefined);
        // With more controllers, /healthz answers 200 only once each of their checks passes too.
        if (r?.status === 200 && KCM_CONTROLLERS.every((c) => r.body.includes(`[+]${c.check} ok`))) break;
        await sleep(100);
      }
    }

    return {
      server,
      kubeconfigPath,
      caFile: pki.caFile,
      clientCertFile: pki.clientCertFile,
      clientKeyFile: pki.clientKeyFile,
      etcdEndpoint,
      ...(controllerManagerServer === undefined ? {} : { controllerManagerServer }),
      dir,
      pids: {
        etcd: etcd.child.pid ?? -1,
        apiserver: apiserver.child.pid ?? -1,
        ...(controllerManager === undefined ? {} : { controllerManager: controllerManager.child.pid ?? -1 }),
        watchdog: watchdog.pid ?? -1,
      },
      binaries,
      startSeconds: (performance.now() - t0) / 1000,
      env,
      kubectl,
      helm: tool(binaries.helm, 'helm'),
      request,
      installCrds,
      stopApiserver: () => apiserver.stop(5_000),
      startApiserver: async () => {
        if (apiserver.running) return;
        const at = servers.indexOf(apiserver);
        apiserver = new Server('kube-apiserver', binaries.kubeApiserver, apiserverArgv, join(logs, 'kube-apiserver.log'));
        servers.splice(at, 1, apiserver);
        await apiserverReady(Date.now() + timeoutMs);
      },
      logTail: async (which, lines) => {
        const s = which === 'etcd' ? etcd : which === 'apiserver' ? apiserver : controllerManager;
        return s === undefined ? '' : s.logTail(lines);
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
