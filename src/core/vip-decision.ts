// vip-decision.ts: what the operator decides for one LoadBalancerVip, from
// the world as observed, with no I/O (the reconciler reads and writes):
//   - whether it may serve its address/ports, or another, older VIP claims them
//   - its backends: Backends selected by label, plus the ready endpoints of its
//     Service (serving-but-terminating endpoints drain: weight 0, no new flows),
//     minus backends a majority of its nodes report unhealthy (unless that is
//     every one: then all stay, reported as Degraded)
//   - its table: the minimal-disruption successor of the one published last,
//     and the generation to publish it under; an empty table when no backend
//     takes new flows (nodes then drop the VIP's packets, counted)
//   - its status: observedGeneration, conditions, counts, summaries
import { canonicalBackends, MAX_WEIGHT, type BackendWeight } from './backends.js';
import { findConflict as findClaimConflict, portClaimsOf, type Conflict, type VipClaim } from './claims.js';
import { setCondition, type Condition, type ConditionInput } from './conditions.js';
import { encapsulates, type VipMode } from './datapath-plan.js';
import { endpointState, type EndpointSliceObject } from './endpoints.js';
import { reportsDigest } from './digest.js';
import type { Table } from './maglev.js';
import { withoutSecondHops } from './second-hops.js';
import { digestOf, TableMemo } from './table-memo.js';

/** The table of a VIP with no backend that takes new flows: size 0, every packet dropped (no-backend). */
export const EMPTY_TABLE: Table = { size: 0, backends: [], slots: new Uint32Array(0) };

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
    readonly mode: VipMode;
    /** Mode gue: each slot's previous owner is kept as its second hop this long after a change. */
    readonly secondChance?: { readonly drainSeconds: number };
    readonly hashing: { readonly tableSize: number; readonly affinity: 'FiveTuple' | 'SourceIP' };
    readonly backends: {
      readonly selector?: LabelSelector;
      readonly service?: { readonly name: string; readonly weight: number; readonly delivery?: 'Pods' | 'Nodes'; readonly externalTrafficPolicy?: 'Local' | 'Cluster' };
    };
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

/** What one node's agent reports for this VIP. */
/** A cluster Node as a delivery target of Services' traffic. */
export interface WorkerNode {
  readonly name: string;
  /** Its InternalIP addresses. */
  readonly addresses: readonly string[];
  /** Ready, and running xdplb's decap role (a fresh Decap report): it can take encapsulated traffic. */
  readonly delivers: boolean;
}

export interface NodeView {
  readonly node: string;
  /** Digest (in full, or its short form: digest.ts) and generation the node programmed for this VIP, if any. */
  readonly programmed: { readonly generation: number; readonly digest: string } | null;
  /** Backend addresses this node finds unhealthy or cannot resolve. */
  readonly unhealthy: readonly string[];
  /** Why this node left the VIP out of its datapath (it does not fit), or null. */
  readonly refused?: string | null;
}

export interface PublishedTable {
  readonly generation: number;
  readonly table: Table;
  /** Since when it is published (its second hops' drain runs from here); absent: unknown, the hops are kept. */
  readonly since?: Date;
}

export interface VipWorld {
  readonly vip: VipObject;
  /** Every LoadBalancerVip (for address claims); or, instead, `conflicts`. */
  readonly allVips?: readonly VipObject[];
  /**
   * The conflicts of every VIP at once (core/claims.ts findConflicts over
   * every VIP's claim, by "namespace/name"), for a caller that decides many
   * VIPs against one set of claims: a scan of allVips per VIP is quadratic.
   */
  readonly conflicts?: ReadonlyMap<string, Conflict>;
  readonly backends: readonly BackendObject[];
  readonly endpointSlices: readonly EndpointSliceObject[];
  /** The load-balancer nodes that should serve the VIP (running an agent, matching nodeSelector). */
  readonly nodes: readonly NodeView[];
  /** The cluster's Nodes, for a Service delivered through its nodes (backends.service.delivery Nodes). */
  readonly workers?: readonly WorkerNode[];
  readonly published: PublishedTable | null;
  /** The highest generation any shard present carries, whole or not (a new one goes above it). */
  readonly highestGeneration?: number;
  readonly now: Date;
  /** Tables computed for other VIPs (the same request gets the same table); a fresh memo when absent. */
  readonly tables?: TableMemo;
}

export interface BackendDecision {
  readonly address: string;
  readonly weight: number;
  readonly source: 'Backend' | 'EndpointSlice' | 'Node';
  readonly state: 'Serving' | 'Draining' | 'Unhealthy' | 'WrongFamily';
}

export interface VipDecision {
  readonly conflict: { readonly with: string; readonly claim: string } | null;
  readonly backends: readonly BackendDecision[];
  /** The table to publish (null: nothing to publish: conflict; EMPTY_TABLE: no serving backend, drop). */
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

/** The VIP as a claim on (address, protocol, port): the rule agents apply too. */
export function claimOf(v: VipObject): VipClaim {
  return { id: vipId(v), address: v.spec.address, creationTimestamp: v.creationTimestamp, ports: v.spec.ports };
}

/** "TCP/80", "UDP/*": one string per port entry. */
export function portClaims(v: VipObject): string[] {
  return portClaimsOf(v.spec.ports);
}

/** The first claim of `vip` that an older VIP on the same (canonical) address holds, if any. */
export function findConflict(vip: VipObject, all: readonly VipObject[]): Conflict | null {
  return findClaimConflict(claimOf(vip), all.map(claimOf));
}

function sameBackends(a: readonly BackendWeight[], b: readonly BackendWeight[]): boolean {
  return a.length === b.length && a.every((x, i) => x.key === b[i]!.key && x.weight === b[i]!.weight);
}

/** Votes needed to call a backend unhealthy: a majority of the VIP's nodes. */
const quorumOf = (nodes: number): number => Math.floor(nodes / 2) + 1;

function unhealthyVotes(nodes: readonly NodeView[]): Map<string, number> {
  const votes = new Map<string, number>();
  for (const n of nodes) for (const a of new Set(n.unhealthy)) votes.set(a, (votes.get(a) ?? 0) + 1);
  return votes;
}

/**
 * A Service delivered through its nodes: each node's own service proxy takes
 * the traffic to the pods, so the backends are nodes (their InternalIP of the
 * VIP's family). Local: the nodes with ready endpoints, weighted by how many;
 * a node with only terminating (still serving) ones drains at weight 0.
 * Cluster: every node that delivers, while some endpoint is ready (with none,
 * the proxy would refuse the connection anyway). Only nodes that deliver
 * (ready, decap role running) are backends.
 */
function nodeBackends(vip: VipObject, service: NonNullable<VipObject['spec']['backends']['service']>, w: VipWorld): BackendDecision[] {
  const family = familyOf(vip.spec.address);
  const serving = new Map<string, number>();
  const draining = new Set<string>();
  let ready = 0;
  for (const slice of w.endpointSlices) {
    if (slice.namespace !== vip.namespace || slice.serviceName !== service.name) continue;
    for (const ep of slice.endpoints) {
      const state = endpointState(ep);
      if (state === 'Serving') ready++;
      if (ep.nodeName === undefined || state === 'Out') continue;
      if (state === 'Serving') serving.set(ep.nodeName, (serving.get(ep.nodeName) ?? 0) + 1);
      else draining.add(ep.nodeName);
    }
  }
  const out: BackendDecision[] = [];
  for (const n of w.workers ?? []) {
    const address = n.addresses.find((a) => familyOf(a) === family);
    if (!n.delivers || address === undefined) continue;
    if (service.externalTrafficPolicy === 'Cluster') {
      if (ready > 0) out.push({ address, weight: service.weight, source: 'Node', state: service.weight > 0 ? 'Serving' : 'Draining' });
      continue;
    }
    const count = serving.get(n.name) ?? 0;
    if (count > 0) out.push({ address, weight: Math.min(MAX_WEIGHT, service.weight * count), source: 'Node', state: service.weight > 0 ? 'Serving' : 'Draining' });
    else if (draining.has(n.name)) out.push({ address, weight: 0, source: 'Node', state: 'Draining' });
  }
  return out;
}

export function decideBackends(w: VipWorld): BackendDecision[] {
  const { vip } = w;
  const byAddress = new Map<string, BackendDecision>();
  for (const b of w.backends) {
    if (b.namespace !== vip.namespace || b.deleting || !selectorMatches(vip.spec.backends.selector, b.labels)) continue;
    byAddress.set(b.address, { address: b.address, weight: b.weight, source: 'Backend', state: b.weight > 0 ? 'Serving' : 'Draining' });
  }
  const service = vip.spec.backends.service;
  if (service !== undefined && service.delivery === 'Nodes') {
    for (const b of nodeBackends(vip, service, w)) if (!byAddress.has(b.address)) byAddress.set(b.address, b);
  } else if (service !== undefined) {
    for (const slice of w.endpointSlices) {
      if (slice.namespace !== vip.namespace || slice.serviceName !== service.name) continue;
      for (const ep of slice.endpoints) {
        const state = endpointState(ep);
        if (state === 'Out') continue;
        const draining = state === 'Draining';
        for (const address of ep.addresses) {
          if (byAddress.has(address)) continue; // an explicit Backend wins over an endpoint
          byAddress.set(address, { address, weight: draining ? 0 : service.weight, source: 'EndpointSlice', state: draining || service.weight === 0 ? 'Draining' : 'Serving' });
        }
      }
    }
  }
  const family = familyOf(vip.spec.address);
  let out = [...byAddress.values()].map((b) => (encapsulates(vip.spec.mode) && familyOf(b.address) !== family ? { ...b, state: 'WrongFamily' as const } : b));

  // Unhealthy by quorum: more than half of the VIP's nodes report it.
  const quorum = quorumOf(w.nodes.length);
  const votes = unhealthyVotes(w.nodes);
  const marked = out.map((b) => (b.state === 'Serving' && w.nodes.length > 0 && (votes.get(b.address) ?? 0) >= quorum ? { ...b, state: 'Unhealthy' as const } : b));
  // Every serving backend unhealthy: fail open rather than take the service down.
  if (marked.some((b) => b.state === 'Unhealthy') && !marked.some((b) => b.state === 'Serving')) return out.sort((a, b) => (a.address < b.address ? -1 : 1));
  out = marked;
  return out.sort((a, b) => (a.address < b.address ? -1 : 1));
}

/**
 * The decided table with its second hops (mode gue: docs/second-chance.md):
 * each slot that changed owner keeps its previous owner, and those the
 * published table carries stay while its drain runs. A backend taken out for
 * its health (it answers nothing) or of the wrong family is never a second
 * hop. Other modes carry none.
 */
function secondChance(w: VipWorld, table: Table, backends: readonly BackendDecision[]): Table {
  const { vip, published } = w;
  if (vip.spec.mode !== 'gue') return withoutSecondHops(table);
  const drainMs = (vip.spec.secondChance?.drainSeconds ?? 0) * 1000;
  const carry = published?.since === undefined || w.now.getTime() - published.since.getTime() < drainMs;
  const eligible = new Set(backends.filter((b) => b.state === 'Serving' || b.state === 'Draining').map((b) => b.address));
  return (w.tables ?? new TableMemo()).secondHops(published?.table ?? null, table, carry, eligible);
}

/** When the published table's second hops end (ms since the epoch), or null: it has none, or its age is unknown. */
export function secondHopsEnd(vip: VipObject, published: PublishedTable | null): number | null {
  if (vip.spec.mode !== 'gue' || published?.table.secondHops === undefined || published.since === undefined) return null;
  return published.since.getTime() + (vip.spec.secondChance?.drainSeconds ?? 0) * 1000;
}

export function decideVip(w: VipWorld): VipDecision {
  const { vip } = w;
  const conflict = w.conflicts !== undefined ? (w.conflicts.get(vipId(vip)) ?? null) : findConflict(vip, w.allVips ?? []);
  const backends = decideBackends(w);
  // Unhealthy backends stay in the table's list with weight 0 (no slots): nodes
  // keep probing them, so they come back once a majority finds them healthy.
  const serving: BackendWeight[] = backends
    .filter((b) => b.state === 'Serving' || b.state === 'Draining' || b.state === 'Unhealthy')
    .map((b) => ({ key: b.address, weight: b.state === 'Unhealthy' ? 0 : b.weight }));
  const size = vip.spec.hashing.tableSize;

  // A table needs a backend that takes new flows. With none (every backend
  // removed, deleted, draining or of the wrong family), an empty table is
  // published: nodes keep the VIP and drop its packets, counted as
  // no-backend, instead of sending them to backends that are gone.
  let table: Table | null = null;
  let generation = w.published?.generation ?? 0;
  if (conflict === null) {
    if (serving.some((b) => b.weight > 0)) {
      const kept = w.published !== null && w.published.table.size === size && w.published.table.alternates !== undefined ? w.published.table : null;
      if (kept !== null && sameBackends(kept.backends, canonicalBackends(serving))) {
        // The same backends and weights: a successor would give back these very slots (every
        // backend holds its quota), so nothing is computed on a pass that changes nothing.
        table = kept;
      } else {
        const next = (w.tables ?? new TableMemo()).next(w.published?.table ?? null, { size, backends: serving });
        // The same slots under other weights keep the published table (and its generation).
        table = kept !== null && digestOf(kept) === digestOf(next) ? kept : next;
      }
      table = secondChance(w, table, backends);
    } else {
      table = EMPTY_TABLE;
    }
    if (w.published === null || (table !== w.published.table && digestOf(w.published.table) !== digestOf(table))) generation = Math.max(generation, w.highestGeneration ?? 0) + 1;
  }
  const digest = table === null ? null : digestOf(table);
  const empty = table !== null && table.size === 0;

  const expected = w.nodes.length;
  const programmed = digest === null ? 0 : w.nodes.filter((n) => n.programmed !== null && reportsDigest(n.programmed.digest, digest)).length;
  const ready = backends.filter((b) => b.state === 'Serving').length;
  const degradedBy = backends.filter((b) => b.state === 'Unhealthy' || b.state === 'WrongFamily');
  // Failed open: every backend that takes new flows is unhealthy on a majority of nodes, and all were kept.
  const quorum = quorumOf(w.nodes.length);
  const votes = unhealthyVotes(w.nodes);
  const active = backends.filter((b) => b.state === 'Serving');
  const allUnhealthyKeptServing = w.nodes.length > 0 && active.length > 0 && active.every((b) => (votes.get(b.address) ?? 0) >= quorum);

  const g = vip.generation;
  const conds: ConditionInput[] = [];
  conds.push(
    conflict === null
      ? { type: 'Conflict', status: 'False', reason: 'NoConflict', message: 'no other VIP claims these ports on this address', observedGeneration: g }
      : { type: 'Conflict', status: 'True', reason: 'AddressInUse', message: `${conflict.claim} is already served by ${conflict.with}, which is older; this VIP is not programmed`, observedGeneration: g },
  );
  let programmedCond: ConditionInput;
  if (table === null) programmedCond = { type: 'Programmed', status: 'False', reason: 'Conflict', message: 'not programmed while in conflict', observedGeneration: g };
  else if (w.nodes.some((n) => (n.refused ?? null) !== null)) {
    const full = w.nodes.filter((n) => (n.refused ?? null) !== null);
    programmedCond = { type: 'Programmed', status: 'False', reason: 'DatapathFull', message: `${full.length} of ${expected} nodes left this VIP out: ${full.map((n) => `${n.node}: ${n.refused!}`).join('; ')}`, observedGeneration: g };
  } else if (expected === 0) programmedCond = { type: 'Programmed', status: 'False', reason: 'NoNodes', message: 'no load-balancer node runs an agent that matches the nodeSelector', observedGeneration: g };
  else if (programmed < expected) programmedCond = { type: 'Programmed', status: 'False', reason: 'NodesPending', message: `${programmed} of ${expected} nodes programmed table ${digest!.slice(0, 19)} (generation ${generation})`, observedGeneration: g };
  else programmedCond = { type: 'Programmed', status: 'True', reason: 'AllNodesProgrammed', message: `${expected} of ${expected} nodes programmed table ${digest!.slice(0, 19)} (generation ${generation})`, observedGeneration: g };
  conds.push(programmedCond);
  conds.push(
    allUnhealthyKeptServing
      ? { type: 'Degraded', status: 'True', reason: 'AllBackendsUnhealthy', message: 'a majority of nodes report every backend that takes new flows unhealthy; serving all of them rather than none', observedGeneration: g }
      : degradedBy.length > 0
        ? { type: 'Degraded', status: 'True', reason: degradedBy.some((b) => b.state === 'Unhealthy') ? 'BackendsUnhealthy' : 'BackendsWrongFamily', message: `left out: ${degradedBy.map((b) => `${b.address} (${b.state === 'Unhealthy' ? 'unhealthy on a majority of nodes' : 'not the VIP address family, needed by ipip'})`).join(', ')}`, observedGeneration: g }
        : { type: 'Degraded', status: 'False', reason: 'AllBackendsHealthy', message: 'no backend is left out', observedGeneration: g },
  );
  // Ready: every node serves the VIP. A node still on the previous generation
  // serves it too, so a rollout in progress (Programmed=False, NodesPending)
  // leaves Ready alone, as a Deployment stays Available while it progresses.
  const servingNodes = w.nodes.filter((n) => n.programmed !== null && !reportsDigest(n.programmed.digest, digestOf(EMPTY_TABLE))).length;
  const rollingOut = programmedCond.reason === 'NodesPending' && servingNodes === expected;
  const isReady = conflict === null && table !== null && !empty && (programmedCond.status === 'True' || rollingOut);
  let notReady: ConditionInput;
  if (conflict !== null) notReady = { type: 'Ready', status: 'False', reason: 'Conflict', message: programmedCond.message, observedGeneration: g };
  else if (empty) notReady = { type: 'Ready', status: 'False', reason: 'NoBackends', message: `no backend can take new flows: an empty table is published and nodes drop the VIP's packets (counted as no-backend); ${programmed} of ${expected} nodes programmed it`, observedGeneration: g };
  else notReady = { type: 'Ready', status: 'False', reason: programmedCond.reason, message: programmedCond.message, observedGeneration: g };
  const readyMessage = `${ready} backends serve on ${expected} nodes${rollingOut ? ` (${programmed} of ${expected} on generation ${generation} so far, the others on an earlier one)` : ''}`;
  conds.push(isReady ? { type: 'Ready', status: 'True', reason: 'Serving', message: readyMessage, observedGeneration: g } : notReady);
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
