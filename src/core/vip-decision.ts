// vip-decision.ts: what the operator decides for one LoadBalancerVip, from
// the world as observed, with no I/O (the reconciler reads and writes):
//   - whether it may serve its address/ports, or another, older VIP claims them
//   - its backends: Backends selected by label, plus the ready endpoints of its
//     Service (serving-but-terminating endpoints drain: weight 0, no new flows),
//     minus backends a majority of its nodes report unhealthy (unless that is
//     every one: then all stay, reported as Degraded)
//   - its table: the minimal-disruption successor of the one published last,
//     and the generation to publish it under
//   - its status: observedGeneration, conditions, counts, summaries
import type { BackendWeight } from './backends.js';
import { setCondition, type Condition, type ConditionInput } from './conditions.js';
import { tableDigest } from './digest.js';
import { buildTable, successorTable, type Table } from './maglev.js';

export type Protocol = 'TCP' | 'UDP';

export interface VipPort {
  readonly protocol: Protocol;
  /** Absent when allPorts. */
  readonly port?: number;
  readonly allPorts?: boolean;
}

export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly { readonly key: string; readonly operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; readonly values?: readonly string[] }[];
}

export interface VipObject {
  readonly namespace: string;
  readonly name: string;
  readonly generation: number;
  readonly creationTimestamp: string;
  readonly spec: {
    readonly address: string;
    readonly ports: readonly VipPort[];
    readonly mode: 'ipip' | 'l2dsr';
    readonly hashing: { readonly tableSize: number; readonly affinity: 'FiveTuple' | 'SourceIP' };
    readonly backends: { readonly selector?: LabelSelector; readonly service?: { readonly name: string; readonly weight: number } };
    readonly nodeSelector?: Readonly<Record<string, string>>;
  };
  readonly conditions: readonly Condition[];
}

export interface BackendObject {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly address: string;
  readonly weight: number;
  readonly deleting: boolean;
}

export interface EndpointSliceObject {
  readonly namespace: string;
  /** The kubernetes.io/service-name label. */
  readonly serviceName: string;
  readonly endpoints: readonly { readonly addresses: readonly string[]; readonly ready?: boolean; readonly serving?: boolean; readonly terminating?: boolean }[];
}

/** What one node's agent reports for this VIP. */
export interface NodeView {
  readonly node: string;
  /** Digest and generation the node programmed for this VIP, if any. */
  readonly programmed: { readonly generation: number; readonly digest: string } | null;
  /** Backend addresses this node finds unhealthy or cannot resolve. */
  readonly unhealthy: readonly string[];
}

export interface PublishedTable {
  readonly generation: number;
  readonly table: Table;
}

export interface VipWorld {
  readonly vip: VipObject;
  /** Every LoadBalancerVip (for address claims). */
  readonly allVips: readonly VipObject[];
  readonly backends: readonly BackendObject[];
  readonly endpointSlices: readonly EndpointSliceObject[];
  /** The load-balancer nodes that should serve the VIP (running an agent, matching nodeSelector). */
  readonly nodes: readonly NodeView[];
  readonly published: PublishedTable | null;
  readonly now: Date;
}

export interface BackendDecision {
  readonly address: string;
  readonly weight: number;
  readonly source: 'Backend' | 'EndpointSlice';
  readonly state: 'Serving' | 'Draining' | 'Unhealthy' | 'WrongFamily';
}

export interface VipDecision {
  readonly conflict: { readonly with: string; readonly claim: string } | null;
  readonly backends: readonly BackendDecision[];
  /** The table to publish (null: nothing to publish: conflict or no serving backend). */
  readonly table: Table | null;
  readonly generation: number;
  readonly digest: string | null;
  readonly status: VipStatusDoc;
}

export interface VipStatusDoc {
  readonly observedGeneration: number;
  readonly portsSummary: string;
  readonly backendsSummary: string;
  readonly nodesSummary: string;
  readonly backends: { readonly ready: number; readonly total: number };
  readonly table?: { readonly size: number; readonly generation: number; readonly digest: string };
  readonly nodes: { readonly programmed: number; readonly expected: number };
  readonly conditions: readonly Condition[];
}

export function selectorMatches(sel: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (sel === undefined) return false;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    if (e.operator === 'In' && !(has && (e.values ?? []).includes(value!))) return false;
    if (e.operator === 'NotIn' && has && (e.values ?? []).includes(value!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

const familyOf = (address: string): 4 | 6 => (address.includes(':') ? 6 : 4);
const vipId = (v: { namespace: string; name: string }): string => `${v.namespace}/${v.name}`;

/** "TCP/80", "UDP/*": one string per port entry. */
export function portClaims(v: VipObject): string[] {
  return v.spec.ports.map((p) => `${p.protocol}/${p.allPorts === true ? '*' : String(p.port)}`);
}

function overlaps(a: string, b: string): boolean {
  const [pa, na] = a.split('/');
  const [pb, nb] = b.split('/');
  return pa === pb && (na === nb || na === '*' || nb === '*');
}

/** Older first: creation time, then namespace/name. The older VIP keeps a contested claim. */
function older(a: VipObject, b: VipObject): boolean {
  return a.creationTimestamp < b.creationTimestamp || (a.creationTimestamp === b.creationTimestamp && vipId(a) < vipId(b));
}

/** The first claim of `vip` that an older VIP on the same address holds, if any. */
export function findConflict(vip: VipObject, all: readonly VipObject[]): { with: string; claim: string } | null {
  for (const other of all) {
    if (vipId(other) === vipId(vip) || other.spec.address !== vip.spec.address || !older(other, vip)) continue;
    for (const mine of portClaims(vip)) {
      const theirs = portClaims(other).find((c) => overlaps(mine, c));
      if (theirs !== undefined) return { with: vipId(other), claim: `${vip.spec.address} ${mine}` };
    }
  }
  return null;
}

export function decideBackends(w: VipWorld): BackendDecision[] {
  const { vip } = w;
  const byAddress = new Map<string, BackendDecision>();
  for (const b of w.backends) {
    if (b.namespace !== vip.namespace || b.deleting || !selectorMatches(vip.spec.backends.selector, b.labels)) continue;
    byAddress.set(b.address, { address: b.address, weight: b.weight, source: 'Backend', state: b.weight > 0 ? 'Serving' : 'Draining' });
  }
  const service = vip.spec.backends.service;
  if (service !== undefined) {
    for (const slice of w.endpointSlices) {
      if (slice.namespace !== vip.namespace || slice.serviceName !== service.name) continue;
      for (const ep of slice.endpoints) {
        const ready = ep.ready !== false;
        const draining = !ready && ep.serving === true && ep.terminating === true;
        if (!ready && !draining) continue;
        for (const address of ep.addresses) {
          if (byAddress.has(address)) continue; // an explicit Backend wins over an endpoint
          byAddress.set(address, { address, weight: draining ? 0 : service.weight, source: 'EndpointSlice', state: draining || service.weight === 0 ? 'Draining' : 'Serving' });
        }
      }
    }
  }
  const family = familyOf(vip.spec.address);
  let out = [...byAddress.values()].map((b) => (vip.spec.mode === 'ipip' && familyOf(b.address) !== family ? { ...b, state: 'WrongFamily' as const } : b));

  // Unhealthy by quorum: more than half of the VIP's nodes report it.
  const quorum = Math.floor(w.nodes.length / 2) + 1;
  const votes = new Map<string, number>();
  for (const n of w.nodes) for (const a of new Set(n.unhealthy)) votes.set(a, (votes.get(a) ?? 0) + 1);
  const marked = out.map((b) => (b.state === 'Serving' && w.nodes.length > 0 && (votes.get(b.address) ?? 0) >= quorum ? { ...b, state: 'Unhealthy' as const } : b));
  // Every serving backend unhealthy: fail open rather than take the service down.
  if (marked.some((b) => b.state === 'Unhealthy') && !marked.some((b) => b.state === 'Serving')) return out.sort((a, b) => (a.address < b.address ? -1 : 1));
  out = marked;
  return out.sort((a, b) => (a.address < b.address ? -1 : 1));
}

export function decideVip(w: VipWorld): VipDecision {
  const { vip } = w;
  const conflict = findConflict(vip, w.allVips);
  const backends = decideBackends(w);
  // Unhealthy backends stay in the table's list with weight 0 (no slots): nodes
  // keep probing them, so they come back once a majority finds them healthy.
  const serving: BackendWeight[] = backends
    .filter((b) => b.state === 'Serving' || b.state === 'Draining' || b.state === 'Unhealthy')
    .map((b) => ({ key: b.address, weight: b.state === 'Unhealthy' ? 0 : b.weight }));
  const size = vip.spec.hashing.tableSize;

  let table: Table | null = null;
  let generation = w.published?.generation ?? 0;
  if (conflict === null && serving.some((b) => b.weight > 0)) {
    table = w.published !== null && w.published.table.size === size ? successorTable(w.published.table, { size, backends: serving }) : buildTable({ size, backends: serving });
    const digest = tableDigest(table);
    if (w.published === null || tableDigest(w.published.table) !== digest) generation += 1;
  }
  const digest = table === null ? null : tableDigest(table);

  const expected = w.nodes.length;
  const programmed = digest === null ? 0 : w.nodes.filter((n) => n.programmed?.digest === digest).length;
  const ready = backends.filter((b) => b.state === 'Serving').length;
  const degradedBy = backends.filter((b) => b.state === 'Unhealthy' || b.state === 'WrongFamily');
  const allUnhealthyKeptServing = w.nodes.length > 0 && serving.length > 0 && serving.every((s) => w.nodes.filter((n) => n.unhealthy.includes(s.key)).length > w.nodes.length / 2);

  const g = vip.generation;
  const conds: ConditionInput[] = [];
  conds.push(
    conflict === null
      ? { type: 'Conflict', status: 'False', reason: 'NoConflict', message: 'no other VIP claims these ports on this address', observedGeneration: g }
      : { type: 'Conflict', status: 'True', reason: 'AddressInUse', message: `${conflict.claim} is already served by ${conflict.with}, which is older; this VIP is not programmed`, observedGeneration: g },
  );
  let programmedCond: ConditionInput;
  if (table === null) programmedCond = { type: 'Programmed', status: 'False', reason: conflict !== null ? 'Conflict' : 'NoBackends', message: conflict !== null ? 'not programmed while in conflict' : 'no backend can take new flows', observedGeneration: g };
  else if (expected === 0) programmedCond = { type: 'Programmed', status: 'False', reason: 'NoNodes', message: 'no load-balancer node runs an agent that matches the nodeSelector', observedGeneration: g };
  else if (programmed < expected) programmedCond = { type: 'Programmed', status: 'False', reason: 'NodesPending', message: `${programmed} of ${expected} nodes programmed table ${digest!.slice(0, 19)} (generation ${generation})`, observedGeneration: g };
  else programmedCond = { type: 'Programmed', status: 'True', reason: 'AllNodesProgrammed', message: `${expected} of ${expected} nodes programmed table ${digest!.slice(0, 19)} (generation ${generation})`, observedGeneration: g };
  conds.push(programmedCond);
  conds.push(
    allUnhealthyKeptServing
      ? { type: 'Degraded', status: 'True', reason: 'AllBackendsUnhealthy', message: 'a majority of nodes report every backend unhealthy; serving all of them rather than none', observedGeneration: g }
      : degradedBy.length > 0
        ? { type: 'Degraded', status: 'True', reason: degradedBy.some((b) => b.state === 'Unhealthy') ? 'BackendsUnhealthy' : 'BackendsWrongFamily', message: `left out: ${degradedBy.map((b) => `${b.address} (${b.state === 'Unhealthy' ? 'unhealthy on a majority of nodes' : 'not the VIP address family, needed by ipip'})`).join(', ')}`, observedGeneration: g }
        : { type: 'Degraded', status: 'False', reason: 'AllBackendsHealthy', message: 'no backend is left out', observedGeneration: g },
  );
  const isReady = conflict === null && table !== null && programmedCond.status === 'True';
  conds.push(
    isReady
      ? { type: 'Ready', status: 'True', reason: 'Serving', message: `${ready} backends serve on ${expected} nodes`, observedGeneration: g }
      : { type: 'Ready', status: 'False', reason: conflict !== null ? 'Conflict' : table === null ? 'NoBackends' : programmedCond.reason, message: programmedCond.message, observedGeneration: g },
  );
  let conditions: Condition[] = [...vip.conditions];
  for (const c of conds) conditions = setCondition(conditions, c, w.now);

  const status: VipStatusDoc = {
    observedGeneration: g,
    portsSummary: portClaims(vip).join(','),
    backendsSummary: `${ready}/${backends.length}`,
    nodesSummary: `${programmed}/${expected}`,
    backends: { ready, total: backends.length },
    ...(table === null || digest === null ? {} : { table: { size: table.size, generation, digest } }),
    nodes: { programmed, expected },
    conditions,
  };
  return { conflict, backends, table, generation, digest, status };
}
