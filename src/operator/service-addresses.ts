// service-addresses.ts: gives Services of type LoadBalancer of xdplb's class
// their external address from the VipPools. Observe (Services, pools,
// namespaces from the informers) -> compute (core/address-pools.ts, one
// decision over all of them) -> apply (each Service's status: the ingress
// addresses with ipMode VIP, so the nodes' service proxy programs them, and a
// condition saying what was assigned or why nothing was; each pool's usage
// and conditions; an Event when an outcome changes). Level-triggered: one
// queue key runs it whole, on any change and every resync. Nothing is held
// here: a restarted operator reads what Services hold from their status.
import type { Logger } from 'pino';
import { API_VERSION, PLURALS } from '../api/coordinates.js';
import { conditionTime } from '../api/to-core.js';
import { parseVipPool, type VipPoolStatus } from '../api/vippool.js';
import { decidePools, familyOfAddress, parseRange, type Allocation, type Family, type FamilyPolicy, type PoolInput, type PoolUsage, type ServiceInput } from '../core/address-pools.js';
import { findCondition, jsonEqual, setCondition, type Condition } from '../core/conditions.js';
import { canonicalIp } from '../core/net.js';
import { selectorMatches, type LabelSelector } from '../core/vip-decision.js';
import { statusCode, type Cached, type Kube, type Obj } from '../kube/k8s.js';

/** The loadBalancerClass xdplb serves. */
export const LOAD_BALANCER_CLASS = 'xdplb.io/xdp';
/** Annotations a Service may carry. */
export const ANNOTATIONS = {
  /** Comma-separated addresses (one per family) the Service asks for. */
  addresses: 'xdplb.io/load-balancer-ips',
  /** The VipPool to take the address from (also one with autoAssign false). */
  pool: 'xdplb.io/address-pool',
  /** Services with the same key share one address on different ports. */
  sharingKey: 'xdplb.io/allow-shared-ip',
} as const;
/** The condition on a Service's status saying what xdplb assigned. */
export const ADDRESS_CONDITION = 'xdplb.io/AddressAssigned';

/** Labels of the LoadBalancerVips made for Services. */
export const SERVICE_VIP_LABELS = { managedBy: 'app.kubernetes.io/managed-by', service: 'xdplb.io/service' } as const;
const MANAGER = 'xdplb-operator';
/** kube-proxy's health port, probed on every node for Services with externalTrafficPolicy Cluster. */
const PROXY_HEALTH_PORT = 10256;

export interface ServiceAddressesOptions {
  readonly kube: Kube;
  /** LoadBalancerVips (those made for Services are kept in line with them). */
  readonly vips: Cached<Obj>;
  readonly services: Cached<Obj>;
  readonly pools: Cached<Obj>;
  readonly namespaces: Cached<Obj>;
  /** Also serve Services of type LoadBalancer without a loadBalancerClass. */
  readonly classless: boolean;
  readonly log: Logger;
  readonly now: () => Date;
}

interface ServiceView {
  readonly obj: Obj;
  readonly input: ServiceInput;
  /** Why its annotations could not be read (it keeps what it holds meanwhile). */
  readonly invalid: string | null;
}

export class ServiceAddresses {
  readonly #o: ServiceAddressesOptions;

  constructor(o: ServiceAddressesOptions) {
    this.#o = o;
  }

  /** Whether xdplb gives this Service its address. */
  serves(svc: Obj): boolean {
    const spec = svc.spec as { type?: string; loadBalancerClass?: string } | undefined;
    if (spec?.type !== 'LoadBalancer') return false;
    return spec.loadBalancerClass === LOAD_BALANCER_CLASS || (spec.loadBalancerClass === undefined && this.#o.classless);
  }

  /** One whole pass: decide every Service's addresses and write what changed. */
  async reconcile(): Promise<void> {
    const namespaceLabels = new Map(this.#o.namespaces.list().map((n) => [n.metadata!.name!, n.metadata!.labels ?? {}]));
    const { pools, invalid: invalidPools } = this.#pools(namespaceLabels);
    const views = this.#o.services.list().filter((s) => this.serves(s)).map((s) => view(s));
    const decision = decidePools(pools, views.map((v) => v.input));
    const failures: unknown[] = [];
    const attempt = async (write: () => Promise<void>): Promise<void> => {
      try {
        await write();
      } catch (e) {
        failures.push(e);
      }
    };
    for (const v of views) await attempt(() => this.#writeService(v, decision.services.get(v.input.key)!));
    // Each address given is a LoadBalancerVip delivering through the nodes; the others go.
    const wanted = new Map<string, Obj>();
    for (const v of views) for (const a of decision.services.get(v.input.key)!.addresses) wanted.set(`${v.obj.metadata!.namespace}/${serviceVipName(v.obj, a.address)}`, serviceVip(v.obj, a.address));
    for (const [key, body] of wanted) await attempt(() => this.#ensureVip(key, body));
    for (const o of this.#o.vips.list()) {
      const key = `${o.metadata!.namespace}/${o.metadata!.name}`;
      if (o.metadata!.labels?.[SERVICE_VIP_LABELS.managedBy] === MANAGER && !wanted.has(key) && o.metadata!.deletionTimestamp === undefined) {
        this.#o.log.info({ vip: key }, 'Deleting LoadBalancerVip of a Service address no longer given');
        await attempt(() => this.#o.kube.delete(PLURALS.vips, o.metadata!.namespace!, o.metadata!.name!));
      }
    }
    // Services no longer served (class or type changed, or class-less serving turned off) give their address back.
    for (const s of this.#o.services.list()) if (!this.serves(s) && findCondition(conditionsOf(s), ADDRESS_CONDITION) !== undefined) await attempt(() => this.#release(s));
    // Every pool's status: those decided (a problem there is an overlap), and those that do not parse (nothing in use).
    const statuses = [
      ...decision.pools.map((usage) => ({ usage, reason: 'Overlap' })),
      ...[...invalidPools].map(([name, problem]) => ({ usage: { name, problem, ipv4: { total: 0, used: 0 }, ipv6: { total: 0, used: 0 } }, reason: 'InvalidAddresses' })),
    ];
    for (const { usage, reason } of statuses) await attempt(() => this.#writePool(usage, reason));
    if (failures.length > 0) throw failures[0];
  }

  /** The pools as the decision takes them; those whose addresses do not parse are left out, with why. */
  #pools(namespaceLabels: ReadonlyMap<string, Record<string, string>>): { pools: PoolInput[]; invalid: Map<string, string> } {
    const pools: PoolInput[] = [];
    const invalid = new Map<string, string>();
    const serviceLabels = new Map(this.#o.services.list().map((s) => [keyOf(s), s.metadata!.labels ?? {}]));
    for (const o of this.#o.pools.list()) {
      const name = o.metadata!.name!;
      const parsed = parseVipPool(o);
      if (!parsed.ok) {
        invalid.set(name, parsed.problem);
        continue;
      }
      const spec = parsed.value.spec;
      try {
        const ranges = spec.addresses.map((a) => parseRange(a));
        const admits = (s: ServiceInput): boolean => {
          const [ns = ''] = s.key.split('/');
          return matchesOrAll(spec.serviceSelector, serviceLabels.get(s.key) ?? {}) && matchesOrAll(spec.namespaceSelector, namespaceLabels.get(ns) ?? {});
        };
        pools.push({ name, created: timeOf(o.metadata!.creationTimestamp), ranges, autoAssign: spec.autoAssign, admits });
      } catch (e) {
        invalid.set(name, (e as Error).message);
      }
    }
    return { pools, invalid };
  }

  async #writeService(v: ServiceView, a: Allocation): Promise<void> {
    const svc = v.obj;
    const status = (svc.status ?? {}) as { loadBalancer?: { ingress?: { ip?: string; ipMode?: string }[] } };
    const existing = conditionsOf(svc);
    const ingress = a.addresses.map((x) => ({ ip: x.address, ipMode: 'VIP' }));
    const problem = v.invalid !== null ? { reason: 'InvalidRequest', message: v.invalid } : a.problem;
    const assigned = a.addresses.map((x) => `${x.address} from pool ${x.pool}`).join(', ');
    const condition =
      a.addresses.length > 0 && problem === null
        ? { type: ADDRESS_CONDITION, status: 'True' as const, reason: 'Assigned', message: assigned, observedGeneration: svc.metadata!.generation ?? 0 }
        : a.addresses.length > 0
          ? { type: ADDRESS_CONDITION, status: 'True' as const, reason: problem!.reason, message: `${assigned}; ${problem!.message}`, observedGeneration: svc.metadata!.generation ?? 0 }
          : { type: ADDRESS_CONDITION, status: 'False' as const, reason: problem?.reason ?? 'NoPool', message: problem?.message ?? 'no address', observedGeneration: svc.metadata!.generation ?? 0 };
    const before = findCondition(existing, ADDRESS_CONDITION);
    const currentIngress = (status.loadBalancer?.ingress ?? []).map((i) => ({ ip: i.ip, ipMode: i.ipMode }));
    const sameCondition = before !== undefined && before.status === condition.status && before.reason === condition.reason && before.message === condition.message && before.observedGeneration === condition.observedGeneration;
    if (jsonEqual(currentIngress, ingress) && sameCondition) return;
    const conditions = setCondition(existing, condition, this.#o.now());
    await this.#patchService(svc, { loadBalancer: { ingress }, conditions });
    const involved = { ...svc, apiVersion: 'v1', kind: 'Service' };
    if (before?.message === condition.message && before.reason === condition.reason) return;
    if (condition.status === 'True' && !jsonEqual(currentIngress, ingress)) {
      this.#o.log.info({ service: v.input.key, addresses: ingress.map((i) => i.ip) }, 'Assigned Service address');
      await this.#event(involved, 'Normal', 'AddressAssigned', `Assigned ${assigned}`);
    }
    if (problem !== null) {
      this.#o.log.info({ service: v.input.key, reason: problem.reason, message: problem.message }, 'Service address not assigned');
      await this.#event(involved, 'Warning', 'AllocationFailed', `${problem.reason}: ${problem.message}`);
    }
  }

  /** Creates or updates the VIP of one Service address when its spec or labels differ from the cache's. */
  async #ensureVip(key: string, body: Obj): Promise<void> {
    const [ns, name] = key.split('/') as [string, string];
    const current = this.#o.vips.get(name, ns);
    // The API server fills in defaults: the stored spec only has to hold what is set here.
    if (current !== undefined && contains(current.spec, body.spec) && contains(current.metadata?.labels ?? {}, body.metadata!.labels)) return;
    this.#o.log.info({ vip: key, address: body.spec!.address }, current === undefined ? 'Creating LoadBalancerVip for a Service address' : 'Updating LoadBalancerVip of a Service address');
    // Keep what the cached object holds beyond what is set here (the operator's finalizer).
    const merged = current === undefined ? body : { ...body, metadata: { ...body.metadata, finalizers: current.metadata!.finalizers } };
    await this.#o.kube.apply(PLURALS.vips, ns, merged, current?.metadata?.resourceVersion);
  }

  async #release(svc: Obj): Promise<void> {
    this.#o.log.info({ service: keyOf(svc), class: LOAD_BALANCER_CLASS }, 'Released Service address: xdplb no longer serves it');
    await this.#patchService(svc, { loadBalancer: { ingress: null }, conditions: conditionsOf(svc).filter((c) => c.type !== ADDRESS_CONDITION) });
  }

  /** A conditional merge patch of the status (409: the Service moved on; the queue retries from a fresher cache). */
  async #patchService(svc: Obj, status: Record<string, unknown>): Promise<void> {
    const m = svc.metadata!;
    await this.#o.kube.patchServiceStatus(m.namespace!, m.name!, { metadata: { resourceVersion: m.resourceVersion }, status });
  }

  /** Writes a pool's status: usage per family, Ready (False with `invalidReason` when it has a problem) and Exhausted. */
  async #writePool(u: PoolUsage, invalidReason: string): Promise<void> {
    const obj = this.#o.pools.get(u.name);
    if (obj === undefined) return;
    const current = (obj.status ?? {}) as VipPoolStatus;
    const generation = obj.metadata!.generation ?? 0;
    const fam = (x: { total: number; used: number }) => ({ total: x.total, used: x.used, free: x.total - x.used });
    const usage = [u.ipv4.total > 0 ? `${u.ipv4.used}/${u.ipv4.total} IPv4` : null, u.ipv6.total > 0 ? `${u.ipv6.used}/${u.ipv6.total} IPv6` : null].filter((x) => x !== null).join(', ');
    const exhausted = (['ipv4', 'ipv6'] as const).filter((f) => u[f].total > 0 && u[f].used >= u[f].total);
    let conditions = setCondition(conditionsOf(obj), u.problem === null
      ? { type: 'Ready', status: 'True', reason: 'Valid', message: 'addresses parsed, overlapping no older pool', observedGeneration: generation }
      : { type: 'Ready', status: 'False', reason: invalidReason, message: u.problem, observedGeneration: generation }, this.#o.now());
    conditions = setCondition(conditions, exhausted.length > 0
      ? { type: 'Exhausted', status: 'True', reason: 'NoFreeAddress', message: `every ${exhausted.map((f) => (f === 'ipv4' ? 'IPv4' : 'IPv6')).join(' and ')} address is in use`, observedGeneration: generation }
      : { type: 'Exhausted', status: 'False', reason: 'FreeAddresses', message: 'addresses are free', observedGeneration: generation }, this.#o.now());
    const next: VipPoolStatus = { observedGeneration: generation, ipv4: fam(u.ipv4), ipv6: fam(u.ipv6), usage, conditions };
    if (jsonEqual(stripTimes({ ...current, conditions: conditionsOf(obj) }), stripTimes(next))) return;
    await this.#o.kube.patchClusterStatus(PLURALS.pools, u.name, next);
    const was = findCondition(conditionsOf(obj), 'Ready');
    if (u.problem !== null && was?.message !== u.problem) await this.#event({ ...obj, apiVersion: API_VERSION, kind: 'VipPool' }, 'Warning', invalidReason, u.problem);
  }

  async #event(involved: Obj, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    try {
      await this.#o.kube.event(involved, type, reason, message, this.#o.now());
    } catch (e) {
      // An Event is a courtesy: a refused one (quota, RBAC) does not fail the pass.
      this.#o.log.warn({ err: e, code: statusCode(e), reason }, 'Event not recorded');
    }
  }
}

/** Whether `have` holds everything `want` sets (objects: key by key; arrays: element by element, same length). */
function contains(have: unknown, want: unknown): boolean {
  if (Array.isArray(want)) return Array.isArray(have) && have.length === want.length && want.every((w, i) => contains(have[i], w));
  if (typeof want === 'object' && want !== null) {
    if (typeof have !== 'object' || have === null || Array.isArray(have)) return false;
    return Object.entries(want).every(([k, v]) => contains((have as Record<string, unknown>)[k], v));
  }
  return have === want;
}

const keyOf = (o: Obj): string => `${o.metadata!.namespace}/${o.metadata!.name}`;
/** A timestamp as client-node gives it: a Date from a list, a string from a watch event. */
const timeOf = (t: Date | string | undefined): number => (t === undefined ? 0 : new Date(t).getTime() || 0);
/** Conditions with their times as the API writes them (client-node turns them into Dates on a list). */
const conditionsOf = (o: Obj): Condition[] =>
  ((o.status as { conditions?: (Omit<Condition, 'lastTransitionTime' | 'observedGeneration'> & { lastTransitionTime: string | Date; observedGeneration?: number })[] } | undefined)?.conditions ?? []).map((c) => ({
    ...c,
    observedGeneration: c.observedGeneration ?? 0,
    lastTransitionTime: conditionTime(c.lastTransitionTime),
  }));
const matchesOrAll = (sel: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean => sel === undefined || selectorMatches(sel, labels);
const stripTimes = (s: VipPoolStatus): unknown => ({ ...s, conditions: (s.conditions ?? []).map(({ lastTransitionTime: _t, ...c }) => c) });

/** A Service as the decision reads it, with what its annotations ask for. */
function view(svc: Obj): ServiceView {
  const spec = (svc.spec ?? {}) as { ipFamilies?: Family[]; ipFamilyPolicy?: FamilyPolicy; loadBalancerIP?: string; ports?: { port: number; protocol?: string }[] };
  const annotations = svc.metadata!.annotations ?? {};
  const ingress = ((svc.status as { loadBalancer?: { ingress?: { ip?: string }[] } } | undefined)?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip === undefined ? [] : [i.ip]));
  let invalid: string | null = null;
  let requested: string[] = [];
  const asked = annotations[ANNOTATIONS.addresses] ?? spec.loadBalancerIP;
  if (asked !== undefined && asked.trim() !== '') {
    try {
      requested = asked.split(',').map((a) => canonicalIp(a.trim()));
    } catch {
      invalid = `${ANNOTATIONS.addresses} (or spec.loadBalancerIP) must be IP addresses separated by commas, got ${JSON.stringify(asked)}`;
    }
  }
  const current: string[] = [];
  for (const ip of ingress) {
    try {
      current.push(canonicalIp(ip));
    } catch {
      // not an address: not one xdplb gave
    }
  }
  const families = (spec.ipFamilies ?? []).length > 0 ? spec.ipFamilies! : current.length > 0 ? [...new Set(current.map(familyOfAddress))] : (['IPv4'] as Family[]);
  return {
    obj: svc,
    invalid,
    input: {
      key: keyOf(svc),
      created: timeOf(svc.metadata!.creationTimestamp),
      families,
      policy: spec.ipFamilyPolicy ?? 'SingleStack',
      requested,
      ...(annotations[ANNOTATIONS.pool] === undefined ? {} : { pool: annotations[ANNOTATIONS.pool] }),
      ...(annotations[ANNOTATIONS.sharingKey] === undefined ? {} : { sharingKey: annotations[ANNOTATIONS.sharingKey] }),
      ports: (spec.ports ?? []).map((p) => `${p.port}/${p.protocol ?? 'TCP'}`),
      current,
    },
  };
}

/** The VIP of one address of a Service: svc.<service>.ipv4 or .ipv6 (a dot never appears in a Service's name). */
export function serviceVipName(svc: Obj, address: string): string {
  return `svc.${svc.metadata!.name}.${familyOfAddress(address) === 'IPv4' ? 'ipv4' : 'ipv6'}`;
}

/**
 * The LoadBalancerVip that carries one address of a Service to its nodes:
 * encapsulated (ipip) to the nodes running the decap role, which hand it to
 * their service proxy. Local: the nodes with ready endpoints, checked on the
 * Service's healthCheckNodePort, where kube-proxy answers 200 only while the
 * node has one. Cluster: every such node, checked on kube-proxy's own health
 * port. Owned by the Service, so it goes with it.
 */
export function serviceVip(svc: Obj, address: string): Obj {
  const m = svc.metadata!;
  const spec = (svc.spec ?? {}) as { ports?: { port: number; protocol?: string }[]; externalTrafficPolicy?: string; healthCheckNodePort?: number };
  const local = spec.externalTrafficPolicy === 'Local';
  const ports = (spec.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP' || p.protocol === 'UDP').map((p) => ({ port: p.port, protocol: p.protocol ?? 'TCP' }));
  return {
    apiVersion: API_VERSION,
    kind: 'LoadBalancerVip',
    metadata: {
      name: serviceVipName(svc, address),
      namespace: m.namespace,
      labels: { [SERVICE_VIP_LABELS.managedBy]: MANAGER, [SERVICE_VIP_LABELS.service]: m.name! },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: m.name!, uid: m.uid!, controller: true, blockOwnerDeletion: false }],
    },
    spec: {
      address,
      ports,
      mode: 'ipip',
      backends: { service: { name: m.name!, weight: 100, delivery: 'Nodes', externalTrafficPolicy: local ? 'Local' : 'Cluster' } },
      healthCheck: { type: 'HTTP', port: local && spec.healthCheckNodePort !== undefined ? spec.healthCheckNodePort : PROXY_HEALTH_PORT, path: '/healthz' },
    },
  };
}
