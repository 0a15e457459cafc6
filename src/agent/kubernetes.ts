// kubernetes.ts: the agent in Kubernetes mode. Informers over LoadBalancerVips,
// VipTables, Nodes and the EndpointSlices of the Services VIPs reference
// rebuild the desired source on every change (a burst of changes, once); the engine
// programs it; after each pass the agent writes its NodeReport when what it
// says changed, and at least every report interval as a heartbeat (the
// operator stops counting a node whose report is silent). The report says
// what was measured: the digest of each VIP table read back from the kernel,
// the backends' health as probed (absent: not probed), the XDP mode read back
// from the interface ("unknown" until attached), and VIPs left out because
// they do not fit the datapath.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { PLURALS } from '../api/coordinates.js';
import { programmedEntry } from '../api/nodereport.js';
import { jsonEqual } from '../core/conditions.js';
import { reportSpacingMs } from '../core/report-pace.js';
import { emptySlices, parseEndpointSlice, referencedServices } from '../kube/endpoint-slices.js';
import { Kube, loadKubeConfig, type Cached, type Obj } from '../kube/k8s.js';
import type { Engine } from './engine.js';
import type { Health } from './health-checker.js';
import { kubeVips, KubernetesSource, type PublishedCache } from './kubernetes-source.js';
import { daemonSetGone, writeNodeReport } from './node-report.js';
import { checkOfProbe } from './probes.js';

export interface KubernetesModeOptions {
  readonly kubeconfig: string | undefined;
  readonly nodeName: string | undefined;
  readonly namespace: string;
  readonly interfaceName: string;
  /** The NodeReport is rewritten at least this often (a heartbeat). */
  readonly reportIntervalSeconds: number;
  /** Route around backends this node finds dead at once (off: only the operator's tables take them out). */
  readonly routeAround: boolean;
  readonly log: Logger;
}

export class KubernetesMode {
  readonly #o: KubernetesModeOptions;
  readonly #kube: Kube;
  readonly node: string;
  readonly #vips;
  readonly #tables;
  readonly #nodes;
  /** EndpointSlices of the Services VIPs reference (replaced when that set changes), synced. */
  #slices: Cached<Obj> = emptySlices;
  #sliceServices = '';
  #stopped = false;
  readonly #cache: PublishedCache = new Map();
  #source: KubernetesSource = new KubernetesSource([]);
  #lastReport: unknown = null;
  #reporting = false;
  #reportAgain = false;
  #forceAgain = false;
  /** When the last report write started (performance.now()) and how long it took, and the timer of a write held back. */
  #lastWriteAt = -Infinity;
  #lastWriteMs = 0;
  #throttled: NodeJS.Timeout | null = null;
  /** A health flip waits to be written (spaced by the least spacing only). */
  #urgent = false;
  #heartbeat: NodeJS.Timeout | null = null;
  /** The XDP mode read back from the interface once attached; "unknown" before. */
  xdpMode = 'unknown';

  constructor(o: KubernetesModeOptions) {
    this.#o = o;
    this.#kube = new Kube(loadKubeConfig(o.kubeconfig));
    this.node = o.nodeName ?? process.env.NODE_NAME ?? hostname();
    this.#vips = this.#kube.customInformer(PLURALS.vips);
    this.#tables = this.#kube.customInformer(PLURALS.tables);
    this.#nodes = this.#kube.nodeInformer();
  }

  /** Starts the informers; `changed` runs (with a fresh source) on every change. */
  async start(engine: Engine, health: Health): Promise<void> {
    // A burst of events (a watch chunk, a list after a restart) makes one rebuild, after the events already read.
    let pending = false;
    const rebuildSoon = (): void => {
      if (pending) return;
      pending = true;
      setImmediate(() => {
        pending = false;
        if (!this.#stopped) rebuild();
      });
    };
    const rebuild = (): void => {
      const labels = this.#nodes.get(this.node)?.metadata?.labels ?? {};
      const slices = this.#slices.list().map(parseEndpointSlice);
      this.#source = new KubernetesSource(kubeVips(this.#vips.list(), this.#tables.list(), labels, this.#cache, rebuildSoon), (key) => health.measured(key), slices, this.#o.routeAround);
      for (const v of this.#source.vips) if (v.problem !== null) this.#o.log.warn({ vip: v.key, problem: v.problem }, 'Published table of VIP is inconsistent; keeping the programmed one');
      health.setTargets(this.#source.healthTargets());
      engine.setSource(this.#source);
    };
    const watch = (informer: Cached<Obj>): void => {
      for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, rebuildSoon);
      informer.on('error', (err: unknown) => {
        this.#o.log.warn({ err: watchError(err) }, 'Watch failed; restarting it');
        setTimeout(() => {
          // A slice informer replaced meanwhile stays stopped.
          const current = [this.#vips, this.#tables, this.#nodes, this.#slices].includes(informer);
          if (!this.#stopped && current) void informer.start().catch(() => undefined);
        }, 1000);
      });
    };
    for (const informer of [this.#tables, this.#nodes]) watch(informer);
    // The slice informer follows the Services the VIPs reference; a new one is synced before it replaces the old.
    const follow = async (): Promise<void> => {
      const names = referencedServices(this.#vips.list());
      const key = names.join(',');
      if (key === this.#sliceServices || this.#stopped) return;
      this.#sliceServices = key;
      const next = names.length === 0 ? emptySlices : this.#kube.endpointSliceInformer(names);
      if (next !== emptySlices) {
        watch(next);
        await next.start();
      }
      const old = this.#slices;
      this.#slices = next;
      await old.stop();
      rebuild();
    };
    const followLater = (): void => void follow().catch((err: unknown) => this.#o.log.warn({ err: (err as Error)?.message ?? String(err) }, 'EndpointSlice watch not updated'));
    // A VIP's status changes often (the operator reports nodes' progress) and means nothing here: only
    // its spec (generation) and its deletion do.
    const seen = new Map<string, string>();
    const signature = (o: Obj): string => `${o.metadata?.uid}|${o.metadata?.generation}|${String(o.metadata?.deletionTimestamp ?? '')}`;
    const keyOf = (o: Obj): string => `${o.metadata?.namespace}/${o.metadata?.name}`;
    for (const verb of ['add', 'update'] as const) {
      this.#vips.on(verb, (o: Obj) => {
        if (seen.get(keyOf(o)) === signature(o)) return;
        seen.set(keyOf(o), signature(o));
        rebuildSoon();
        followLater();
      });
    }
    this.#vips.on('delete', (o: Obj) => {
      seen.delete(keyOf(o));
      rebuildSoon();
      followLater();
    });
    this.#vips.on('error', (err: unknown) => {
      this.#o.log.warn({ err: watchError(err) }, 'Watch failed; restarting it');
      setTimeout(() => {
        if (!this.#stopped) void this.#vips.start().catch(() => undefined);
      }, 1000);
    });
    await Promise.all([this.#vips.start(), this.#tables.start(), this.#nodes.start()]);
    await follow();
    rebuild();
    this.#heartbeat = setInterval(() => this.report(engine, health, true), this.#o.reportIntervalSeconds * 1000);
  }

  /**
   * Whether DaemonSet `name` of this agent's namespace is gone or being
   * deleted (helm uninstall), so the agent should take its datapath away
   * when it stops; false while it stands (a rollout or a pod deletion: the
   * next pod adopts the datapath) and when the API server cannot say (a
   * datapath is never removed on a guess). An uninstall removes the agent's
   * RBAC and ServiceAccount with the DaemonSet, so 401 and 403 say it too.
   */
  async ownerGone(name: string): Promise<{ gone: boolean; why: string }> {
    return daemonSetGone(this.#kube, this.#o.namespace, name);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    if (this.#throttled !== null) clearTimeout(this.#throttled);
    await Promise.all([this.#vips.stop(), this.#tables.stop(), this.#nodes.stop(), this.#slices.stop()]);
  }

  /**
   * Writes the NodeReport when what it says changed (after every engine
   * pass), or always when `force` (the heartbeat). `urgent`: a backend's
   * health flipped, which the operator's quorum waits for: spaced by the
   * least spacing only (core/report-pace.ts).
   */
  report(engine: Engine, health: Health, force = false, urgent = false): void {
    this.#urgent ||= urgent;
    if (this.#throttled !== null && urgent) {
      // Waiting out a long spacing: the flip goes as soon as the least spacing allows.
      clearTimeout(this.#throttled);
      this.#throttled = null;
    }
    if (this.#reporting || this.#throttled !== null) {
      this.#reportAgain = true;
      this.#forceAgain ||= force;
      return;
    }
    // Writes are spaced (core/report-pace.ts): the first change after a quiet
    // spell is written at once, the changes within the spacing after it in
    // one write at its end.
    const wait = this.#lastWriteAt + reportSpacingMs(this.#lastWriteMs, this.#o.reportIntervalSeconds, this.#urgent) - performance.now();
    if (wait > 0 && !this.#stopped) {
      this.#forceAgain ||= force;
      this.#throttled = setTimeout(() => {
        this.#throttled = null;
        const again = this.#forceAgain;
        this.#reportAgain = false;
        this.#forceAgain = false;
        this.report(engine, health, again);
      }, wait);
      return;
    }
    this.#reporting = true;
    this.#urgent = false;
    void this.#report(engine, health, force)
      .catch((e: unknown) => this.#o.log.warn({ err: (e as Error).message }, 'NodeReport update failed'))
      .finally(() => {
        this.#reporting = false;
        if (this.#reportAgain) {
          const again = this.#forceAgain;
          this.#reportAgain = false;
          this.#forceAgain = false;
          this.report(engine, health, again);
        }
      });
  }

  async #report(engine: Engine, health: Health, force: boolean): Promise<void> {
    const snapshot = health.snapshot();
    // A programmed VIP is one short string; the others get an entry saying why not.
    const programmed: string[] = [];
    const vips = this.#source.vips.flatMap((v) => {
      const held = engine.programmed.get(v.key);
      const refused = engine.refused.get(v.key);
      // A refused VIP holds no table (the engine records null), so a held published digest is never refused.
      if (v.published !== null && held === v.published.digest) {
        programmed.push(programmedEntry(v.key, v.published.generation, v.published.digest));
        return [];
      }
      // Nothing published yet, and nothing wrong here: the operator's business (the VIP's status), not this node's.
      if (v.published === null && refused === undefined && v.problem === null) return [];
      const [namespace, name] = v.key.split('/');
      let message: string;
      if (refused !== undefined) message = `not programmed: ${refused}`;
      else if (v.problem !== null) message = v.problem;
      else message = held === undefined ? 'programming' : `the kernel holds ${held ?? 'no table'}, the published table is ${v.published?.digest ?? 'none'}`;
      return [{
        namespace,
        name,
        // What the kernel holds, read back after programming; absent when not read yet.
        ...(held === undefined ? {} : { digest: held ?? '' }),
        programmed: false,
        state: refused !== undefined ? 'Refused' : 'Pending',
        message,
      }];
    });
    // Per backend address: resolved or not, and each distinct check of it (shared by the VIPs checking
    // it the same way) as probed; the operator finds each VIP's view through the VIP's check. No VIP
    // lists: at 1000 VIPs over 100 backends they made a report larger than the API server takes.
    const byAddress = new Map<string, { address: string; checks: Map<string, boolean>; resolved: boolean; reason: string }>();
    for (const s of engine.status) {
      for (const b of s.backends) {
        const entry = byAddress.get(b.address) ?? { address: b.address, checks: new Map<string, boolean>(), resolved: b.resolved, reason: '' };
        byAddress.set(b.address, entry);
        const probe = this.#source.probeOf(s.name, b.address);
        const h = probe === undefined ? undefined : snapshot.get(probe);
        // Reported only when probed: a backend no health check covers has no checks (unknown).
        if (probe !== undefined && h !== undefined) {
          entry.checks.set(checkOfProbe(probe), h.healthy);
          if (!h.healthy) entry.reason = 'failed health checks';
        }
        if (!b.resolved) {
          entry.resolved = false;
          entry.reason = b.reason ?? 'MAC not resolved';
        }
      }
    }
    const body = {
      interface: this.#o.interfaceName,
      xdpMode: this.xdpMode,
      reportIntervalSeconds: this.#o.reportIntervalSeconds,
      programmed: programmed.sort(),
      vips,
      backends: [...byAddress.values()]
        .sort((a, b) => (a.address < b.address ? -1 : 1))
        .map((b) => ({
          address: b.address,
          ...(b.checks.size === 0 ? {} : { checks: [...b.checks].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([check, healthy]) => ({ check, healthy })) }),
          resolved: b.resolved,
          reason: b.reason,
        })),
      programmedSummary: `${programmed.length}/${this.#source.vips.length}`,
    };
    if (!force && jsonEqual(body, this.#lastReport)) return;
    // One round trip on the failover path: patch, and create the report only when it is missing.
    this.#lastWriteAt = performance.now();
    await writeNodeReport(this.#kube, this.#o.namespace, this.node, { node: this.node }, { ...body, observedTime: new Date().toISOString() });
    this.#lastReport = body;
    this.#lastWriteMs = performance.now() - this.#lastWriteAt;
  }
}

/** A watch failure as a log line: the message, and the network cause a fetch failure hides (ECONNREFUSED, a timeout). */
function watchError(err: unknown): string {
  const e = err as (Error & { cause?: { code?: string; message?: string } }) | undefined;
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `${e?.message ?? String(err)}${cause === undefined ? '' : ` (${cause})`}`;
}

