// main.ts: `xdplb agent`, what the privileged hostNetwork DaemonSet runs on
// each load-balancer node (and, with --role decap, on worker nodes:
// decap-role.ts). Standalone mode: VIPs and backends from a config
// file. Prepares the datapath (adopt, upgrade or fresh; see lifecycle.ts),
// programs the maps, attaches, then keeps the maps converged as the config,
// health checks and neighbours change. SIGTERM leaves the datapath running,
// unless the agent's DaemonSet is going (an uninstall: --owner-daemonset).
import { readFile } from 'node:fs/promises';
import { release as kernelRelease } from 'node:os';
import type { Server } from 'node:http';
import { pino, type Logger } from 'pino';
import { MapWriter, type ControlSettings } from '../bpf/map-writer.js';
import { readCounter, readReasons } from '../bpf/datapath.js';
import { objectPath } from '../bpf/objects.js';
import { releaseFreedMemory } from './memory.js';
import { DEFAULT_IPIP_SOURCE_V4, DEFAULT_IPIP_SOURCE_V6, parseStandaloneConfig, type StandaloneConfig } from '../config/standalone.js';
import { EMPTY_IMAGE } from '../core/datapath-plan.js';
import { ErrorCodes, XdplbError, isXdplbError } from '../core/errors.js';
import { requireKernel } from '../core/kernel.js';
import { Engine } from './engine.js';
import { commandFlags } from '../config/flags.js';
import { FileWatch } from './file-watch.js';
import { AGENT_USAGE, parseAgentFlags, type AgentFlags } from './flags.js';
import { FailoverThread } from './failover-thread.js';
import { cleanup, prepare, type Prepared } from './lifecycle.js';
import { interfaceMac, interfaceMtu } from '../net/interfaces.js';
import { AgentMetrics } from './metrics.js';
import { NeighborResolver } from './neighbors.js';
import { KubernetesMode } from './kubernetes.js';
import { runDecapRole } from './decap-role.js';
import { checkOfProbe } from './probes.js';
import { StandaloneSource } from './standalone-source.js';
import { agentStatus, type StatusSources } from './status.js';

export interface AgentIo {
  out(line: string): void;
  err(line: string): void;
}

/** Runs the agent until SIGTERM/SIGINT; resolves with the exit status. */
export async function runAgent(argv: readonly string[], io: AgentIo): Promise<number> {
  const flags = commandFlags('agent', AGENT_USAGE, io, () => parseAgentFlags(argv));
  if (typeof flags === 'number') return flags;
  const log = pino({ level: flags['log-level'], base: { component: 'agent', interface: flags.interface } });
  try {
    if (flags.cleanup) {
      const { removed } = cleanup(flags['pin-dir'], flags.interface);
      log.info({ removed }, removed ? 'Detached the program and removed the pins' : 'Found nothing pinned for the interface');
      return 0;
    }
    if (flags.role === 'decap') {
      requireKernel(kernelRelease());
      const signal = new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      return await runDecapRole(flags, log.child({ role: 'decap' }), signal);
    }
    return await runDatapath(flags, log);
  } catch (e) {
    if (isXdplbError(e)) {
      log.error({ err: e, code: e.code }, 'Agent stopped');
      io.err(`xdplb agent: ${e.message.split('\n').join('\n  ')}`);
      return 2;
    }
    throw e;
  }
}

async function loadConfig(path: string): Promise<{ config: StandaloneConfig; text: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new XdplbError(ErrorCodes.IO, `cannot read --config ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return { config: parseStandaloneConfig(text, path), text };
}

async function runDatapath(flags: AgentFlags, log: Logger): Promise<number> {
  requireKernel(kernelRelease()); // XDPLB_KERNEL_TOO_OLD before anything touches the datapath
  const configPath = flags.config;
  const initial = configPath === undefined ? null : await loadConfig(configPath);
  let config = initial?.config ?? null;
  const k8s = flags.kubernetes
    ? new KubernetesMode({ kubeconfig: flags.kubeconfig, nodeName: flags['node-name'], namespace: flags.namespace ?? process.env.POD_NAMESPACE ?? 'xdplb-system', interfaceName: flags.interface, reportIntervalSeconds: flags['report-interval'], routeAround: flags['route-around'] === 'on', log: log.child({ component: 'kubernetes' }) })
    : null;
  const metrics = new AgentMetrics({ interface: flags.interface });
  const control: ControlSettings = {
    srcMac: interfaceMac(flags.interface),
    mtu: config?.mtu ?? interfaceMtu(flags.interface),
    v4SrcPrefix: config?.ipipSourceV4 ?? DEFAULT_IPIP_SOURCE_V4,
    v6SrcPrefix: config?.ipipSourceV6 ?? DEFAULT_IPIP_SOURCE_V6,
  };
  const prepared: Prepared = prepare({ interfaceName: flags.interface, pinDir: flags['pin-dir'], objectPath: flags.object ?? objectPath('xdp_lb.o'), mode: flags['xdp-mode'] });
  log.info({ kind: prepared.kind, version: prepared.version }, prepared.kind === 'adopt' ? 'Adopted the pinned datapath' : prepared.kind === 'upgrade' ? 'Upgrading the pinned datapath' : 'Loaded the datapath');

  const writer = new MapWriter(prepared.maps, prepared.tablePins);
  const image = prepared.kind === 'adopt' ? writer.readImage() : EMPTY_IMAGE;
  const previousWriter = prepared.previous === null ? null : new MapWriter(prepared.previous, prepared.previousTablePins ?? undefined);
  const seed = previousWriter === null ? null : { image: previousWriter.readImage(), writer: previousWriter };
  const engine = new Engine(
    {
      writer,
      control,
      resolver: new NeighborResolver({ interfaceName: flags.interface }),
      metrics,
      log: log.child({ component: 'engine' }),
      releaseMemory: releaseFreedMemory,
      onPass: () => {
        health.setModel(engine.failoverModel());
        k8s?.report(engine, health);
      },
    },
    image,
    seed,
  );
  // Probes run on the failover thread, which marks a failing backend down itself (Kubernetes mode).
  const health: FailoverThread = new FailoverThread({
    downMap: prepared.maps.backendDown,
    log: log.child({ component: 'failover' }),
    onChange: (key, healthy, last, writes) => {
      engine.noteDown(writes);
      log.info({ backend: key, healthy, probe: last.detail, ...(writes.length > 0 ? { routedAround: writes.map((w) => w.address) } : {}) }, healthy ? 'Backend passed its health checks' : 'Backend failed its health checks');
      // Standalone: the agent takes the backend out of its tables itself. Kubernetes: the failover
      // thread marked it down in this datapath already (its slots take their alternates; this
      // thread's fast path covers a flip it could not write); the agent reports, and the operator
      // decides the next table by quorum.
      engine.routeAround('health');
      if (k8s !== null) k8s.report(engine, health, false, true);
    },
    onProbe: (key, result) => {
      // A probe is shared by every VIP checking the backend the same way: "type|address|port[|path]".
      const backend = key.split('|')[1] ?? '';
      const check = checkOfProbe(key);
      metrics.probes.inc({ backend, check, result: result.ok ? 'ok' : 'fail' });
      metrics.backendHealthy.set({ backend, check }, health.healthy(key) ? 1 : 0);
    },
  });

  const use = (cfg: StandaloneConfig): void => {
    const source = new StandaloneSource(cfg, (key) => health.healthy(key));
    health.setTargets(source.healthTargets());
    engine.setSource(source);
  };
  if (k8s !== null) await k8s.start(engine, health);
  else use(config!);
  await engine.settled();
  const mode = prepared.activate();
  if (k8s !== null) {
    k8s.xdpMode = mode;
    k8s.report(engine, health);
  }
  metrics.xdpMode.set({ interface: flags.interface, mode }, 1);
  const state: StatusSources = { datapath: prepared.kind, xdpMode: mode, rejectedConfigs: 0, lastRejection: null };
  log.info({ mode, vips: engine.vipIds.size }, 'Datapath attached and programmed');

  metrics.setCounters({
    vips: function* () {
      for (const [vip, id] of engine.vipIds) {
        const c = readCounter(prepared.maps.vipStats, id);
        yield { vip, packets: c.packets, bytes: c.bytes };
      }
    },
    backends: function* () {
      for (const [index, be] of engine.image.backends) {
        const c = readCounter(prepared.maps.backendStats, index);
        yield { backend: be.address, packets: c.packets, bytes: c.bytes };
      }
    },
    reasons: function* () {
      for (const [reason, c] of Object.entries(readReasons(prepared.maps.reasonStats))) yield { reason, packets: c.packets };
    },
  });

  const watch = configPath === undefined || initial === null ? null : new FileWatch(configPath, {
    initialContent: initial.text,
    onChange: (text, error) => {
      if (error !== null) {
        log.warn({ err: error }, 'Config file unreadable; keeping the last good config');
        return;
      }
      try {
        config = parseStandaloneConfig(text ?? '', configPath);
        log.info({ vips: config.vips.length }, 'Config changed');
        use(config);
      } catch (e) {
        metrics.configErrors.inc();
        const problems = (e as Error).message.split('\n').slice(1).map((l) => l.trim());
        state.rejectedConfigs++;
        state.lastRejection = problems;
        log.error({ problems }, 'Rejected config file; keeping the last good config');
      }
    },
  });
  await watch?.start();
  const resync = setInterval(() => engine.resync(), flags.resync * 1000);

  let server: Server | null = null;
  if (flags['metrics-address'] !== 'off') {
    server = await metrics.serve(flags['metrics-address'], () => agentStatus(engine, state));
    log.info({ address: flags['metrics-address'] }, 'Serving metrics');
  }

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  // An uninstall (the agent's DaemonSet gone or going) takes the datapath away; anything else leaves it forwarding.
  const owner = flags['owner-daemonset'];
  const uninstall = k8s === null || owner === undefined ? null : await k8s.ownerGone(owner);
  if (uninstall?.gone === true) log.info({ signal, reason: uninstall.why }, 'Stopping and removing the datapath: the agent is being uninstalled');
  else log.info({ signal, ...(uninstall === null ? {} : { reason: uninstall.why }) }, 'Stopping; the datapath keeps forwarding (xdplb agent --cleanup removes it)');
  clearInterval(resync);
  watch?.stop();
  await k8s?.stop();
  health.stop();
  engine.stop();
  await engine.settled();
  server?.close();
  prepared.close();
  if (uninstall?.gone === true) cleanup(flags['pin-dir'], flags.interface);
  return 0;
}
