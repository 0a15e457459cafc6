// to-core.ts: the one place where parsed API objects become the pure core's
// inputs (core/vip-decision.ts, core/claims.ts; tables: table-index.ts), and
// where what the operator writes is checked against the API's schema, at
// compile time. The core never sees an API object.
import type { z } from 'zod';
import type { VipClaim } from '../core/claims.js';
import type { Condition } from '../core/conditions.js';
import { claimOf, type BackendObject, type NodeView, type VipObject, type VipStatusDoc } from '../core/vip-decision.js';
import type { Backend } from './backend.js';
import type { LoadBalancerVip, VipStatus, vipStatusSchema } from './loadbalancervip.js';
import { parseProgrammedEntry, type NodeReport } from './nodereport.js';
import { checkId } from '../core/health.js';
import { DEFAULT_DRAIN_SECONDS } from './defaults.js';

/** A timestamp in the form conditions are written in (seconds, "Z"); text that is not one stays as it is. */
/** A condition's lastTransitionTime as the API writes it (RFC 3339, seconds); client-node may hand over a Date. */
export function conditionTime(t: string | Date): string {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** VIPs without status, by parsed VIP: each reconcile takes every VIP's claim. */
const bareVips = new WeakMap<LoadBalancerVip, VipObject>();

/** The VIP as the operator's decision takes it; `status` gives the conditions it had (none without). */
export function vipObjectOf(vip: LoadBalancerVip, status?: VipStatus): VipObject {
  if (status !== undefined) return vipObjectWith(vip, status);
  let bare = bareVips.get(vip);
  if (bare === undefined) bareVips.set(vip, (bare = vipObjectWith(vip, undefined)));
  return bare;
}

function vipObjectWith(vip: LoadBalancerVip, status: VipStatus | undefined): VipObject {
  const { metadata: m, spec: s } = vip;
  return {
    namespace: m.namespace,
    name: m.name,
    generation: m.generation,
    creationTimestamp: m.creationTimestamp,
    spec: {
      address: s.address,
      // The CRD's CEL rule makes every entry carry exactly one of port and allPorts.
      ports: s.ports.map((p) => ({ protocol: p.protocol, ...(p.allPorts === true ? { allPorts: true } : { port: Number(p.port) }) })),
      mode: s.mode,
      ...(s.mode === 'gue' ? { secondChance: { drainSeconds: s.secondChance?.drainSeconds ?? DEFAULT_DRAIN_SECONDS } } : {}),
      hashing: { tableSize: s.hashing.tableSize, affinity: s.hashing.affinity },
      backends: s.backends ?? {},
      ...(s.nodeSelector === undefined ? {} : { nodeSelector: s.nodeSelector }),
    },
    // A condition without observedGeneration reads as 0, as apimachinery reads it.
    conditions: (status?.conditions ?? []).map((c): Condition => ({ ...c, observedGeneration: c.observedGeneration ?? 0, lastTransitionTime: conditionTime(c.lastTransitionTime) })),
  };
}

/** The VIP's claim on (address, protocol, port): the rule the operator and the agents both apply. */
export function vipClaimOf(vip: LoadBalancerVip): VipClaim {
  return claimOf(vipObjectOf(vip));
}

const backendObjects = new WeakMap<Backend, BackendObject>();

/** A Backend as the decision takes it (once per parsed Backend: every reconcile reads them all). */
export function backendObjectOf(b: Backend): BackendObject {
  let o = backendObjects.get(b);
  if (o === undefined) backendObjects.set(b, (o = backendObjectWith(b)));
  return o;
}

function backendObjectWith(b: Backend): BackendObject {
  return {
    namespace: b.metadata.namespace,
    name: b.metadata.name,
    labels: b.metadata.labels,
    address: b.spec.address,
    weight: b.spec.weight,
    deleting: b.metadata.deletionTimestamp !== undefined,
  };
}

/** The health check a VIP's backends are probed with, as nodes report it (core/health.ts checkId); undefined: none. */
export function vipCheckOf(vip: LoadBalancerVip): string | undefined {
  const hc = vip.spec.healthCheck;
  if (hc === undefined) return undefined;
  // The CRD's CEL rule: without healthCheck.port, some port entry has one.
  const port = hc.port ?? vip.spec.ports.map((p) => p.port).find((p) => p !== undefined && p > 0);
  return port === undefined ? undefined : checkId(hc.type === 'HTTP' ? 'http' : 'tcp', Number(port), hc.path);
}

/** One report indexed once: every VIP's reconcile reads it, and a report lists a thousand VIPs. */
interface ReportIndex {
  readonly vips: ReadonlyMap<string, NonNullable<NodeReport['status']['vips']>[number]>;
  /** From `programmed`: VIP key -> generation and short digest. */
  readonly programmed: ReadonlyMap<string, { readonly generation: number; readonly digest: string }>;
  readonly unresolved: readonly string[];
  /** check -> addresses failing it. */
  readonly failing: ReadonlyMap<string, readonly string[]>;
  /** Reports of agents before checks: VIP key -> addresses unhealthy for it. */
  readonly legacy: ReadonlyMap<string, readonly string[]>;
}

const indexes = new WeakMap<NodeReport, ReportIndex>();

function indexOf(r: NodeReport): ReportIndex {
  let index = indexes.get(r);
  if (index !== undefined) return index;
  const vips = new Map((r.status.vips ?? []).map((v) => [`${v.namespace}/${v.name}`, v]));
  const programmed = new Map<string, { generation: number; digest: string }>();
  for (const entry of r.status.programmed ?? []) {
    const p = parseProgrammedEntry(entry);
    if (p !== null) programmed.set(p.key, { generation: p.generation, digest: p.digest });
  }
  const unresolved: string[] = [];
  const failing = new Map<string, string[]>();
  const legacy = new Map<string, string[]>();
  for (const b of r.status.backends ?? []) {
    if (b.resolved === false) unresolved.push(b.address);
    for (const c of b.checks ?? []) if (!c.healthy) failing.set(c.check, [...(failing.get(c.check) ?? []), b.address]);
    if (b.healthy === false) for (const key of b.vips ?? []) legacy.set(key, [...(legacy.get(key) ?? []), b.address]);
  }
  index = { vips, programmed, unresolved, failing, legacy };
  indexes.set(r, index);
  return index;
}

/**
 * What one node's report says of one VIP (`namespace/name`, checked with
 * `check`, vipCheckOf): its programmed table, and the backends the node
 * cannot resolve or finds failing the VIP's check.
 */
export function nodeViewOf(r: NodeReport, vip: { readonly namespace: string; readonly name: string; readonly check?: string | undefined }): NodeView {
  const key = `${vip.namespace}/${vip.name}`;
  const index = indexOf(r);
  const mine = index.vips.get(key);
  const unhealthy = [...index.unresolved, ...(vip.check === undefined ? [] : (index.failing.get(vip.check) ?? [])), ...(index.legacy.get(key) ?? [])];
  return {
    node: r.spec.node,
    programmed: index.programmed.get(key) ?? (mine?.programmed === true ? { generation: Number(mine.generation), digest: String(mine.digest) } : null),
    unhealthy,
    refused: mine?.state === 'Refused' ? (mine.message ?? 'does not fit the datapath') : null,
  };
}

type DeepReadonly<T> = T extends (infer E)[] ? readonly DeepReadonly<E>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

/** A VIP status as the operator writes it: the decision's, which must fit the CRD's status schema. */
export type WrittenVipStatus = DeepReadonly<z.input<typeof vipStatusSchema>>;

export function writtenVipStatus(doc: VipStatusDoc): WrittenVipStatus {
  return doc;
}
