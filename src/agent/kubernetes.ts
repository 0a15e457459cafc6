// kubernetes.ts: the agent in Kubernetes mode. Informers over LoadBalancerVips,
// VipTables and Nodes rebuild the desired source on every change; the engine
// programs it; after each pass the agent writes its NodeReport (what it
// programmed, which backends it finds unhealthy or unresolved) when that
// changed, which is what the operator's status and quorum read.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { jsonEqual } from '../core/conditions.js';
import { GROUP, Kube, loadKubeConfig, PLURALS, statusCode, VERSION, type Obj } from '../operator/k8s.js';
import type { Engine } from './engine.js';
import type { HealthChecker } from './health-checker.js';
import { kubeVips, KubernetesSource, type KubeVip } from './kubernetes-source.js';

export interface KubernetesModeOptions {
  readonly kubeconfig: string | undefined;
  readonly nodeName: string | undefined;
  readonly namespace: string;
  readonly interfaceName: string;
  readonly log: Logger;
}

export class KubernetesMode {
  readonly #o: KubernetesModeOptions;
  readonly #kube: Kube;
  readonly node: string;
  readonly #vips;
  readonly #tables;
  readonly #nodes;
  readonly #cache = new Map<string, { version: string; value: KubeVip['published']; problem: string | null }>();
  #source: KubernetesSource = new KubernetesSource([]);
  #lastReport: unknown = null;
  #reporting = false;
  #reportAgain = false;
  xdpMode = 'native';

  constructor(o: KubernetesModeOptions) {
    this.#o = o;
    this.#kube = new Kube(loadKubeConfig(o.kubeconfig));
    this.node = o.nodeName ?? process.env.NODE_NAME ?? hostname();
    this.#vips = this.#kube.customInformer(PLURALS.vips);
    this.#tables = this.#kube.customInformer(PLURALS.tables);
    this.#nodes = this.#kube.nodeInformer();
  }

  /** Starts the informers; `changed` runs (with a fresh source) on every change. */
  async start(engine: Engine, health: HealthChecker): Promise<void> {
    const rebuild = (): void => {
      const labels = this.#nodes.get(this.node)?.metadata?.labels ?? {};
      this.#source = new KubernetesSource(kubeVips(this.#vips.list(), this.#tables.list(), labels, this.#cache));
      for (const v of this.#source.vips) if (v.problem !== null) this.#o.log.warn({ vip: v.key, problem: v.problem }, 'Published table of VIP is inconsistent; keeping the programmed one');
      health.setTargets(this.#source.healthTargets());
      engine.setSource(this.#source);
    };
    for (const informer of [this.#vips, this.#tables, this.#nodes]) {
      for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, rebuild);
      informer.on('error', (err: unknown) => {
        this.#o.log.warn({ err: (err as Error)?.message ?? String(err) }, 'Watch failed; restarting it');
        setTimeout(() => void informer.start().catch(() => undefined), 1000);
      });
    }
    await Promise.all([this.#vips.start(), this.#tables.start(), this.#nodes.start()]);
    rebuild();
  }

  async stop(): Promise<void> {
    await Promise.all([this.#vips.stop(), this.#tables.stop(), this.#nodes.stop()]);
  }

  /** Writes the NodeReport when what it says changed (called after every engine pass). */
  report(engine: Engine, health: HealthChecker): void {
    if (this.#reporting) {
      this.#reportAgain = true;
      return;
    }
    this.#reporting = true;
    void this.#report(engine, health)
      .catch((e: unknown) => this.#o.log.warn({ err: (e as Error).message }, 'NodeReport update failed'))
      .finally(() => {
        this.#reporting = false;
        if (this.#reportAgain) {
          this.#reportAgain = false;
          this.report(engine, health);
        }
      });
  }

  async #report(engine: Engine, health: HealthChecker): Promise<void> {
    const programmed = new Map(engine.status.map((s) => [s.name, s]));
    const snapshot = health.snapshot();
    const vips = this.#source.vips.map((v) => {
      const s = programmed.get(v.key);
      const ok = v.published !== null && s?.digest === v.published.digest;
      const [namespace, name] = v.key.split('/');
      return {
        namespace,
        name,
        generation: v.published?.generation ?? 0,
        digest: v.published?.digest ?? '',
        programmed: ok,
        message: v.problem ?? (v.published === null ? 'no table published' : ok ? 'programmed' : 'programming'),
      };
    });
    const byAddress = new Map<string, { address: string; vips: string[]; healthy: boolean; resolved: boolean; reason: string }>();
    for (const s of engine.status) {
      for (const b of s.backends) {
        const h = snapshot.get(`${s.name}|${b.address}`);
        const entry = byAddress.get(b.address) ?? { address: b.address, vips: [], healthy: true, resolved: b.resolved, reason: '' };
        entry.vips.push(s.name);
        if (h !== undefined && !h.healthy) {
          entry.healthy = false;
          entry.reason = 'failed health checks';
        }
        if (!b.resolved) {
          entry.resolved = false;
          entry.reason = b.reason ?? 'MAC not resolved';
        }
        byAddress.set(b.address, entry);
      }
    }
    const body = {
      interface: this.#o.interfaceName,
      xdpMode: this.xdpMode,
      vips,
      backends: [...byAddress.values()].sort((a, b) => (a.address < b.address ? -1 : 1)),
      programmedSummary: `${vips.filter((v) => v.programmed).length}/${vips.length}`,
    };
    if (jsonEqual(body, this.#lastReport)) return;
    const api = this.#kube.custom;
    const ns = this.#o.namespace;
    const create = (): Promise<unknown> =>
      api.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: PLURALS.reports,
        body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'NodeReport', metadata: { name: this.node, namespace: ns }, spec: { node: this.node } } as Obj,
      });
    const patch = (): Promise<void> => this.#kube.patchStatus(PLURALS.reports, ns, this.node, { ...body, observedTime: new Date().toISOString() });
    // One round trip on the failover path: patch, and create the report only when it is missing.
    try {
      await patch();
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
      await create().catch((c: unknown) => {
        if (statusCode(c) !== 409) throw c;
      });
      await patch();
    }
    this.#lastReport = body;
  }
}
