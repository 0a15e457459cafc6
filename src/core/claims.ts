// claims.ts: who may serve an (address, protocol, port). Two VIPs that claim
// the same canonical address and an overlapping port (a port, or every port of
// the protocol) conflict; the older claim wins: earlier creation time, then
// namespace/name. The operator reports the loser as Conflict=True and agents
// apply the same rule themselves, whatever the status says, so a new duplicate
// never reaches the datapath even while the operator is down. Pure.
import { canonicalIp } from './net.js';

export interface VipClaim {
  /** namespace/name */
  readonly id: string;
  readonly address: string;
  /** RFC 3339; compared as text after normalisation to ISO form by the caller. */
  readonly creationTimestamp: string;
  readonly ports: readonly { readonly protocol: 'TCP' | 'UDP'; readonly port?: number; readonly allPorts?: boolean }[];
}

export interface Conflict {
  /** The id of the older VIP that holds the claim. */
  readonly with: string;
  /** "address PROTOCOL/port", e.g. "2001:db8::1 TCP/80". */
  readonly claim: string;
}

/** Addresses already made canonical: every reconcile compares one VIP's address with every other's. */
const canonical = new Map<string, string>();
const CANONICAL_CACHE = 65536;

/** Canonical text of an address; text that is not an address is compared as given. */
export function addressKey(address: string): string {
  let key = canonical.get(address);
  if (key !== undefined) return key;
  try {
    key = canonicalIp(address);
  } catch {
    key = address;
  }
  if (canonical.size >= CANONICAL_CACHE) canonical.clear();
  canonical.set(address, key);
  return key;
}

/** "TCP/80", "UDP/*": one string per port entry. */
export function portClaimsOf(ports: VipClaim['ports']): string[] {
  return ports.map((p) => `${p.protocol}/${p.allPorts === true ? '*' : String(p.port)}`);
}

function overlaps(a: string, b: string): boolean {
  const [pa, na] = a.split('/');
  const [pb, nb] = b.split('/');
  return pa === pb && (na === nb || na === '*' || nb === '*');
}

/** True when `a` holds a contested claim against `b`: older creation time, then namespace/name. */
export function olderClaim(a: VipClaim, b: VipClaim): boolean {
  return a.creationTimestamp < b.creationTimestamp || (a.creationTimestamp === b.creationTimestamp && a.id < b.id);
}

/** The first claim of `vip` that an older VIP on the same address holds, if any. */
export function findConflict(vip: VipClaim, all: readonly VipClaim[]): Conflict | null {
  const address = addressKey(vip.address);
  const mine = portClaimsOf(vip.ports);
  for (const other of all) {
    if (other.id === vip.id || addressKey(other.address) !== address || !olderClaim(other, vip)) continue;
    const theirs = portClaimsOf(other.ports);
    for (const m of mine) {
      if (theirs.some((t) => overlaps(m, t))) return { with: other.id, claim: `${address} ${m}` };
    }
  }
  return null;
}

/**
 * findConflict for every claim at once, in O(n log n): the claims that an
 * older claim on the same address contests, each with an older claim that
 * holds one of its ports. The same VIPs conflict as with findConflict; this is
 * what an agent with a thousand VIPs runs on every change.
 */
export function findConflicts(all: readonly VipClaim[]): Map<string, Conflict> {
  const byAddress = new Map<string, VipClaim[]>();
  for (const c of all) {
    const address = addressKey(c.address);
    const group = byAddress.get(address) ?? [];
    group.push(c);
    byAddress.set(address, group);
  }
  const out = new Map<string, Conflict>();
  for (const [address, group] of byAddress) {
    group.sort((a, b) => (olderClaim(a, b) ? -1 : olderClaim(b, a) ? 1 : 0));
    // Per protocol: who first held each port, and who first held every port.
    const held = new Map<string, string>();
    const firstOfProtocol = new Map<string, string>();
    const everyPort = new Map<string, string>();
    for (const c of group) {
      let conflict: Conflict | null = null;
      for (const claim of portClaimsOf(c.ports)) {
        const [protocol, port] = claim.split('/') as [string, string];
        const holder = everyPort.get(protocol) ?? (port === '*' ? firstOfProtocol.get(protocol) : held.get(claim));
        if (holder !== undefined && holder !== c.id) {
          conflict = { with: holder, claim: `${address} ${claim}` };
          break;
        }
      }
      if (conflict !== null) out.set(c.id, conflict);
      for (const claim of portClaimsOf(c.ports)) {
        const [protocol, port] = claim.split('/') as [string, string];
        if (!firstOfProtocol.has(protocol)) firstOfProtocol.set(protocol, c.id);
        if (port === '*' && !everyPort.has(protocol)) everyPort.set(protocol, c.id);
        if (!held.has(claim)) held.set(claim, c.id);
      }
    }
  }
  return out;
}
