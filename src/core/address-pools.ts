// address-pools.ts: which addresses the Services of type LoadBalancer get
// from the VipPools. One pure decision over every pool and Service, taken
// again on every change (level-triggered), so the result depends only on
// what the API holds, never on the order events came in:
// - a Service keeps the addresses it holds while they stay valid (in a pool
//   that serves it, not taken by an older holder);
// - older Services are served first, so a conflict is lost by the newcomer;
// - a requested address is given exactly, or not at all, with the reason,
//   and before Services that take any address pick it;
// - Services with the same sharing key share one address when their ports
//   differ; anything else gets an address of its own;
// - dual-stack follows ipFamilyPolicy.
// Pools whose ranges overlap an older pool's are refused as a whole.

import { ipBytes, ipText } from './net.js';

export type Family = 'IPv4' | 'IPv6';

/** One range of a pool, as numbers (inclusive). */
export interface AddressRange {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

export interface PoolInput {
  readonly name: string;
  /** Creation time (ms since the epoch): the older pool wins an overlap. */
  readonly created: number;
  readonly ranges: readonly AddressRange[];
  /** False: only Services that name this pool (or request one of its addresses) get its addresses. */
  readonly autoAssign: boolean;
  /** Whether the pool's service and namespace selectors admit the Service. */
  readonly admits: (service: ServiceInput) => boolean;
}

export type FamilyPolicy = 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';

export interface ServiceInput {
  /** namespace/name */
  readonly key: string;
  readonly created: number;
  /** spec.ipFamilies, in order (the first is the primary). */
  readonly families: readonly Family[];
  readonly policy: FamilyPolicy;
  /** Addresses asked for (annotation or spec.loadBalancerIP), canonical text. */
  readonly requested: readonly string[];
  /** The pool asked for by name, if any. */
  readonly pool?: string;
  /** Services with the same key may share an address on different ports. */
  readonly sharingKey?: string;
  /** "port/protocol" of each port. */
  readonly ports: readonly string[];
  /** The addresses its status holds now (canonical text). */
  readonly current: readonly string[];
}

export type AllocationReason =
  | 'NoPool' // no pool serves this Service (or the named pool does not exist, or does not serve it)
  | 'PoolExhausted'
  | 'AddressInUse'
  | 'AddressNotInPool'
  | 'FamilyUnavailable'
  | 'InvalidRequest';

export interface Allocation {
  /** The addresses given, primary family first; empty when it has none. */
  readonly addresses: readonly { readonly address: string; readonly pool: string }[];
  /** Why it has none, or fewer than its policy asks for. */
  readonly problem: { readonly reason: AllocationReason; readonly message: string } | null;
}

export interface PoolUsage {
  readonly name: string;
  /** Null: the pool is valid. */
  readonly problem: string | null;
  /** Per family: addresses in the pool, and used by some Service. Totals saturate at Number.MAX_SAFE_INTEGER. */
  readonly ipv4: { readonly total: number; readonly used: number };
  readonly ipv6: { readonly total: number; readonly used: number };
}

export interface PoolDecision {
  readonly services: ReadonlyMap<string, Allocation>;
  readonly pools: readonly PoolUsage[];
}

/** Parses a pool entry: a CIDR ("10.0.0.0/28"), a range ("10.0.0.5-10.0.0.9") or one address. Throws on anything else. */
export function parseRange(text: string): AddressRange {
  const t = text.trim();
  const dash = t.indexOf('-');
  if (dash >= 0) {
    const a = toNumber(t.slice(0, dash).trim());
    const b = toNumber(t.slice(dash + 1).trim());
    if (a.family !== b.family) throw new Error(`${t}: the two ends are of different families`);
    if (a.value > b.value) throw new Error(`${t}: the first address is after the last`);
    return { family: a.family, first: a.value, last: b.value };
  }
  const slash = t.indexOf('/');
  if (slash >= 0) {
    const base = toNumber(t.slice(0, slash));
    const bits = base.family === 'IPv4' ? 32 : 128;
    const lenText = t.slice(slash + 1);
    const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
    if (!(len >= 0 && len <= bits)) throw new Error(`${t}: the prefix length must be 0 to ${bits}`);
    const host = (1n << BigInt(bits - len)) - 1n;
    if ((base.value & host) !== 0n) throw new Error(`${t}: host bits are set (the network is ${fromNumber(base.family, base.value & ~host)}/${len})`);
    return { family: base.family, first: base.value, last: base.value | host };
  }
  const one = toNumber(t);
  return { family: one.family, first: one.value, last: one.value };
}

function toNumber(text: string): { family: Family; value: bigint } {
  let bytes: Uint8Array;
  try {
    bytes = ipBytes(text);
  } catch {
    throw new Error(`${JSON.stringify(text)} is not an IP address`);
  }
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return { family: bytes.length === 4 ? 'IPv4' : 'IPv6', value: v };
}

function fromNumber(family: Family, value: bigint): string {
  const n = family === 'IPv4' ? 4 : 16;
  const bytes = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return ipText(bytes);
}

/** The family of an address's canonical text. */
export const familyOfAddress = (address: string): Family => (address.includes(':') ? 'IPv6' : 'IPv4');

const saturate = (n: bigint): number => (n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n));
const byAge = <T extends { created: number }>(key: (x: T) => string) => (a: T, b: T): number => a.created - b.created || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

interface Holder {
  readonly sharingKey: string | undefined;
  readonly ports: Set<string>;
}

/** Assigns addresses to every Service from the pools. Pure and deterministic. */
export function decidePools(poolsIn: readonly PoolInput[], servicesIn: readonly ServiceInput[]): PoolDecision {
  // Pools: the older of two overlapping pools is kept; the younger is refused whole.
  const pools = [...poolsIn].sort(byAge((p) => p.name));
  const valid: PoolInput[] = [];
  const poolProblem = new Map<string, string>();
  for (const p of pools) {
    const clash = valid.find((q) => p.ranges.some((r) => q.ranges.some((s) => r.family === s.family && r.first <= s.last && s.first <= r.last)));
    if (clash !== undefined) poolProblem.set(p.name, `its addresses overlap those of the older pool ${clash.name}`);
    else valid.push(p);
  }
  const poolOf = (address: string): PoolInput | undefined => {
    const { family, value } = toNumber(address);
    return valid.find((p) => p.ranges.some((r) => r.family === family && r.first <= value && value <= r.last));
  };

  const held = new Map<string, Holder>();
  const fits = (address: string, s: ServiceInput): boolean => {
    const h = held.get(address);
    if (h === undefined) return true;
    return h.sharingKey !== undefined && h.sharingKey === s.sharingKey && s.ports.every((p) => !h.ports.has(p));
  };
  const take = (address: string, s: ServiceInput): void => {
    const h = held.get(address) ?? { sharingKey: s.sharingKey, ports: new Set<string>() };
    for (const p of s.ports) h.ports.add(p);
    held.set(address, h);
  };

  // Holders first, then those asking for an address, then the rest, each by age: what is held
  // is not lost to a newer Service, and a request is not lost to one that takes any address.
  const rank = (s: ServiceInput): number => (s.current.length > 0 ? 0 : s.requested.length > 0 ? 1 : 2);
  const services = [...servicesIn].sort((a, b) => rank(a) - rank(b) || byAge<ServiceInput>((s) => s.key)(a, b));
  const out = new Map<string, Allocation>();
  for (const s of services) out.set(s.key, allocate(s));

  function allocate(s: ServiceInput): Allocation {
    const usable = valid.filter((p) => (s.pool === undefined ? p.autoAssign : p.name === s.pool) && p.admits(s));
    if (s.pool !== undefined && !valid.some((p) => p.name === s.pool)) {
      return none('NoPool', poolProblem.has(s.pool) ? `the pool ${s.pool} is refused: ${poolProblem.get(s.pool)!}` : `no VipPool named ${s.pool}`);
    }
    const wanted: Family[] = s.policy === 'SingleStack' ? [s.families[0] ?? 'IPv4'] : s.families.length > 0 ? [...new Set(s.families)] : ['IPv4', 'IPv6'];
    const requested = new Map<Family, string>();
    for (const a of s.requested) {
      const f = familyOfAddress(a);
      if (requested.has(f)) return none('InvalidRequest', `more than one ${f} address requested (${s.requested.join(', ')})`);
      if (!wanted.includes(f)) return none('InvalidRequest', `${a} is ${f}, which the Service's ipFamilies (${wanted.join(', ')}) do not include`);
      requested.set(f, a);
    }
    const got: { address: string; pool: string; family: Family }[] = [];
    const problems: { reason: AllocationReason; message: string }[] = [];
    for (const f of wanted) {
      const r = oneFamily(s, f, usable, requested.get(f));
      if ('reason' in r) problems.push(r);
      else got.push({ ...r, family: f });
    }
    const required = s.policy === 'PreferDualStack' ? 1 : wanted.length;
    if (got.length < required || (requested.size > 0 && got.length < requested.size)) return { addresses: [], problem: problems[0] ?? { reason: 'NoPool', message: 'no address' } };
    for (const g of got) take(g.address, s);
    return { addresses: got.map(({ address, pool }) => ({ address, pool })), problem: got.length < wanted.length ? problems[0]! : null };
  }

  function oneFamily(s: ServiceInput, f: Family, usable: readonly PoolInput[], requested: string | undefined): { address: string; pool: string } | { reason: AllocationReason; message: string } {
    if (requested !== undefined) {
      const p = poolOf(requested);
      if (p === undefined) return { reason: 'AddressNotInPool', message: `${requested} is in no VipPool` };
      if (!p.admits(s) || (s.pool !== undefined && p.name !== s.pool)) return { reason: 'AddressNotInPool', message: `${requested} is in the pool ${p.name}, which does not serve this Service` };
      if (!fits(requested, s)) return { reason: 'AddressInUse', message: inUse(requested, s) };
      return { address: requested, pool: p.name };
    }
    // Keep what it holds, while valid.
    for (const a of s.current) {
      if (familyOfAddress(a) !== f) continue;
      const p = poolOf(a);
      if (p !== undefined && usable.includes(p) && fits(a, s)) return { address: a, pool: p.name };
    }
    if (usable.length === 0) return { reason: 'NoPool', message: s.pool === undefined ? `no VipPool with ${f} addresses serves this Service` : `the pool ${s.pool} does not serve this Service` };
    // Share an address with a Service of the same key, on other ports.
    if (s.sharingKey !== undefined) {
      for (const [a, h] of held) {
        if (h.sharingKey !== s.sharingKey || familyOfAddress(a) !== f || !fits(a, s)) continue;
        const p = poolOf(a);
        if (p !== undefined && usable.includes(p)) return { address: a, pool: p.name };
      }
    }
    const ofFamily = usable.filter((p) => p.ranges.some((r) => r.family === f));
    if (ofFamily.length === 0) return { reason: 'FamilyUnavailable', message: `no VipPool serving this Service has ${f} addresses` };
    for (const p of ofFamily) {
      for (const r of p.ranges) {
        if (r.family !== f) continue;
        for (let v = r.first; v <= r.last; v++) {
          const a = fromNumber(f, v);
          if (!held.has(a)) return { address: a, pool: p.name };
        }
      }
    }
    return { reason: 'PoolExhausted', message: `every ${f} address of ${ofFamily.map((p) => p.name).join(', ')} is in use` };
  }

  function inUse(address: string, s: ServiceInput): string {
    const h = held.get(address)!;
    if (h.sharingKey === undefined || h.sharingKey !== s.sharingKey) return `${address} is in use by another Service${h.sharingKey === undefined ? '' : ' with another sharing key'}`;
    return `${address} is shared under key ${h.sharingKey}, but on ports ${s.ports.filter((p) => h.ports.has(p)).join(', ')} already`;
  }

  const usage: PoolUsage[] = pools.map((p) => {
    const count = (f: Family) => {
      let total = 0n;
      for (const r of p.ranges) if (r.family === f) total += r.last - r.first + 1n;
      let used = 0;
      if (!poolProblem.has(p.name)) for (const a of held.keys()) if (familyOfAddress(a) === f && poolOf(a) === p) used++;
      return { total: saturate(total), used };
    };
    return { name: p.name, problem: poolProblem.get(p.name) ?? null, ipv4: count('IPv4'), ipv6: count('IPv6') };
  });
  return { services: out, pools: usage };
}

const none = (reason: AllocationReason, message: string): Allocation => ({ addresses: [], problem: { reason, message } });
