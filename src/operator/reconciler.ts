// reconciler.ts: one pass for one LoadBalancerVip, level-triggered: read the
// informers' caches, let core/vip-decision decide, then converge the world:
// finalizer, VipTable shards of the decided table (a new generation beside
// the old, which goes once the new one is whole), one status write when the
// status differs, Events on condition transitions only. Only fresh NodeReports
// count (node-liveness.ts).
import type { Logger } from 'pino';
import { findCondition, jsonEqual, transitions, type Condition } from '../core/conditions.js';
import { assembleShards, encodeShards, shardObjectName, type TableShardSpec } from '../core/table-shards.js';
import { decideVip, selectorMatches, type BackendObject, type EndpointSliceObject, type NodeView, type VipObject } from '../core/vip-decision.js';
import { FINALIZER, GROUP, PLURALS, VERSION, VIP_LABEL, type Cached, type Kube, type Obj } from '../kube/k8s.js';

export interface Caches {
  readonly vips: Cached<Obj>;
  readonly backends: Cached<Obj>;
  readonly endpointSlices: Cached<Obj>;
  readonly tables: Cached<Obj>;
  readonly reports: Cached<Obj>;
  readonly nodes: Cached<Obj>;
}

export interface ReconcilerDeps {
  readonly kube: Kube;
  readonly caches: Caches;
  /** The namespace holding NodeReports (the operator's own). */
  readonly reportNamespace: string;
  readonly log: Logger;
  readonly now: () => Date;
  /** Whether a NodeReport (by name) is fresh: stale reports' nodes neither vote nor count as expected. */
  readonly reportFresh: (name: string) => boolean;
}

type Spec = Record<string, unknown>;

export function toVip(o: Obj): VipObject {
  const s = (o.spec ?? {}) as Spec;
  const hashing = (s.hashing ?? {}) as Spec;
  return {
    namespace: o.metadata!.namespace!,
    name: o.metadata!.name!,
    generation: Number(o.metadata!.generation ?? 0),
    creationTimestamp: new Date(o.metadata!.creationTimestamp ?? 0).toISOString(),
    spec: {
      address: String(s.address),
      ports: ((s.ports ?? []) as Spec[]).map((p) => ({ protocol: p.protocol === 'UDP' ? 'UDP' : 'TCP', ...(p.allPorts === true ? { allPorts: true } : { port: Number(p.port) }) })),
      mode: s.mode === 'l2dsr' ? 'l2dsr' : 'ipip',
      hashing: { tableSize: Number(hashing.tableSize ?? 65537), affinity: hashing.affinity === 'SourceIP' ? 'SourceIP' : 'FiveTuple' },
      backends: (s.backends ?? {}) as VipObject['spec']['backends'],
      ...(s.nodeSelector === undefined ? {} : { nodeSelector: s.nodeSelector as Record<string, string> }),
    },
    conditions: ((o.status?.conditions ?? []) as Condition[]).map((c) => ({ ...c, lastTransitionTime: new Date(c.lastTransitionTime).toISOString().replace(/\.\d{3}Z$/, 'Z') })),
  };
}

function toBackend(o: Obj): BackendObject {
  const s = (o.spec ?? {}) as Spec;
  return {
    namespace: o.metadata!.namespace!,
    name: o.metadata!.name!,
    labels: o.metadata!.labels ?? {},
    address: String(s.address),
    weight: Number(s.weight ?? 100),
    deleting: o.metadata!.deletionTimestamp !== undefined,
  };
}

function toSlice(o: Obj): EndpointSliceObject {
  const endpoints = ((o as unknown as { endpoints?: Spec[] }).endpoints ?? []).map((e) => {
    const c = (e.conditions ?? {}) as Spec;
    return { addresses: (e.addresses ?? []) as string[], ready: c.ready as boolean | undefined, serving: c.serving as boolean | undefined, terminating: c.terminating as boolean | undefined };
  });
  return { namespace: o.metadata!.namespace!, serviceName: o.metadata!.labels?.['kubernetes.io/service-name'] ?? '', endpoints };
}

function toShard(o: Obj): TableShardSpec {
  return o.spec as unknown as TableShardSpec;
}

/** Keys of the VIPs an object's change may affect (informer callbacks enqueue these). */
export function affectedVips(caches: Caches, kind: 'vip' | 'backend' | 'slice' | 'table' | 'report' | 'node', o: Obj): string[] {
  const ns = o.metadata?.namespace;
  const all = caches.vips.list();
  switch (kind) {
    case 'vip':
      return [`${ns}/${o.metadata!.name}`];
    case 'table':
      return [`${ns}/${String((o.spec as Spec | undefined)?.vip ?? o.metadata?.labels?.[VIP_LABEL])}`];
    case 'backend':
      return all.filter((v) => v.metadata!.namespace === ns && selectorMatches(((v.spec as Spec).backends as Spec | undefined)?.selector as never, o.metadata!.labels ?? {})).map((v) => `${ns}/${v.metadata!.name}`);
    case 'slice': {
      const svc = o.metadata?.labels?.['kubernetes.io/service-name'];
      return all.filter((v) => v.metadata!.namespace === ns && (((v.spec as Spec).backends as Spec | undefined)?.service as Spec | undefined)?.name === svc).map((v) => `${ns}/${v.metadata!.name}`);
    }
    case 'report':
    case 'node':
      return all.map((v) => `${v.metadata!.namespace}/${v.metadata!.name}`);
  }
}

export class Reconciler {
  readonly #d: ReconcilerDeps;

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
  }

  async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const { caches, kube } = this.#d;
    const log = this.#d.log.child({ kind: 'LoadBalancerVip', namespace, name });
    const obj = caches.vips.get(name, namespace);
    const shards = caches.tables.list(namespace).filter((t) => (t.spec as Spec | undefined)?.vip === name);

    if (obj === undefined) {
      // Gone (its finalizer already ran, or it never had one): its shards go too.
      for (const s of shards) await kube.delete(PLURALS.tables, namespace, s.metadata!.name!);
      return;
    }
    const finalizers = obj.metadata!.finalizers ?? [];
    if (obj.metadata!.deletionTimestamp !== undefined) {
      if (!finalizers.includes(FINALIZER)) return;
      for (const s of shards) await kube.delete(PLURALS.tables, namespace, s.metadata!.name!);
      await kube.setFinalizers(PLURALS.vips, namespace, name, finalizers.filter((f) => f !== FINALIZER), obj.metadata!.resourceVersion!);
      log.info('Removed the published table and the finalizer of deleted VIP');
      return;
    }
    if (!finalizers.includes(FINALIZER)) {
      await kube.setFinalizers(PLURALS.vips, namespace, name, [...finalizers, FINALIZER], obj.metadata!.resourceVersion!);
      return; // the update re-queues this VIP
    }

    const vip = toVip(obj);
    const nodeLabels = new Map(caches.nodes.list().map((n) => [n.metadata!.name!, n.metadata!.labels ?? {}]));
    const nodes: NodeView[] = [];
    for (const r of caches.reports.list(this.#d.reportNamespace)) {
      if (!this.#d.reportFresh(r.metadata!.name!)) continue;
      const node = String((r.spec as Spec | undefined)?.node ?? r.metadata!.name);
      const labels = nodeLabels.get(node) ?? {};
      if (vip.spec.nodeSelector !== undefined && !Object.entries(vip.spec.nodeSelector).every(([k, v]) => labels[k] === v)) continue;
      const st = (r.status ?? {}) as Spec;
      const mine = ((st.vips ?? []) as Spec[]).find((v) => v.namespace === namespace && v.name === name);
      const unhealthy = ((st.backends ?? []) as Spec[])
        .filter((b) => ((b.vips ?? []) as string[]).includes(key) && (b.healthy === false || b.resolved === false))
        .map((b) => String(b.address));
      nodes.push({
        node,
        programmed: mine?.programmed === true ? { generation: Number(mine.generation), digest: String(mine.digest) } : null,
        unhealthy,
        refused: mine?.state === 'Refused' ? String(mine.message ?? 'does not fit the datapath') : null,
      });
    }
    let published = null;
    try {
      const assembled = assembleShards(shards.map(toShard));
      published = assembled === null ? null : { generation: assembled.generation, table: assembled.table };
    } catch (e) {
      log.warn({ err: e }, 'Published table is inconsistent; publishing a fresh one');
    }

    const decision = decideVip({
      vip,
      // A VIP being deleted no longer holds its claims (agents stop programming it at once too).
      allVips: caches.vips.list().filter((o) => o.metadata?.deletionTimestamp === undefined).map(toVip),
      backends: caches.backends.list().map(toBackend),
      endpointSlices: caches.endpointSlices.list().map(toSlice),
      nodes,
      published,
      highestGeneration: Math.max(0, ...shards.map((s) => Number(toShard(s).generation) || 0)),
      now: this.#d.now(),
    });

    // Publish: a new generation is written beside the published one (never
    // over it), and older or unfinished generations are removed only once the
    // current one is whole, so an agent always finds a complete generation.
    if (decision.table !== null) {
      let current = published?.generation ?? null;
      if (published === null || decision.generation !== published.generation) {
        const owner = { apiVersion: `${GROUP}/${VERSION}`, kind: 'LoadBalancerVip', name, uid: obj.metadata!.uid!, controller: true, blockOwnerDeletion: true };
        for (const spec of encodeShards(name, decision.generation, decision.table)) {
          await kube.createImmutable(PLURALS.tables, namespace, {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: 'VipTable',
            metadata: { name: shardObjectName(name, spec.generation, spec.shard.index), namespace, labels: { [VIP_LABEL]: name }, ownerReferences: [owner] },
            spec: spec as unknown as Record<string, unknown>,
          });
        }
        current = decision.generation;
        log.info({ generation: decision.generation, digest: decision.digest, size: decision.table.size, backends: decision.backends.length }, 'Published table of VIP');
      }
      for (const s of shards) if (toShard(s).generation !== current) await kube.delete(PLURALS.tables, namespace, s.metadata!.name!);
    } else if (shards.length > 0 && decision.conflict !== null) {
      for (const s of shards) await kube.delete(PLURALS.tables, namespace, s.metadata!.name!);
    }

    // Status: one write, and none when nothing changed.
    const current = (obj.status ?? {}) as Spec;
    const next = decision.status as unknown as Spec;
    if (!jsonEqual(JSON.parse(JSON.stringify(next)), normalizeStatus(current))) {
      await kube.patchStatus(PLURALS.vips, namespace, name, { ...next, ...(decision.status.table === undefined ? { table: null } : {}) });
      const now = this.#d.now();
      for (const c of transitions(vip.conditions, decision.status.conditions)) {
        const warn = (c.type === 'Conflict' && c.status === 'True') || (c.type === 'Degraded' && c.status === 'True') || (c.type === 'Ready' && c.status === 'False' && findCondition(vip.conditions, 'Ready') !== undefined);
        await kube.event(obj, warn ? 'Warning' : 'Normal', c.reason, c.message, now).catch((e: unknown) => log.warn({ err: e }, 'Event not recorded'));
      }
      log.info({ ready: findCondition(decision.status.conditions, 'Ready')?.status, backends: decision.status.backendsSummary, nodes: decision.status.nodesSummary }, 'Updated status of VIP');
    }
  }
}

/** Status as read back: timestamps in the format conditions are written in. */
function normalizeStatus(s: Spec): Spec {
  const conditions = ((s.conditions ?? []) as Condition[]).map((c) => ({ ...c, lastTransitionTime: new Date(c.lastTransitionTime).toISOString().replace(/\.\d{3}Z$/, 'Z') }));
  return JSON.parse(JSON.stringify({ ...s, conditions })) as Spec;
}
