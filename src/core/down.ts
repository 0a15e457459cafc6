// down.ts: which backends a node routes around on its own, at once, before
// any new table: those its own probes find failing. A node that cannot reach
// a backend cannot deliver to it either, so marking it down here changes no
// flow that could have worked, and every slot of it goes to its precomputed
// alternate (the same on every node, since the alternates are published with
// the table). Like the operator's quorum, it fails open: a backend is not
// marked down where that would leave a VIP with no backend up, since a probe
// that fails everywhere is more likely wrong than every backend dead.
// Backends listed without slots (weight 0, taken out by the operator) are
// marked down too when failing: a table still programmed from before may
// give them slots while the new one is on its way. Pure.

export interface VipBackends {
  readonly name: string;
  /** The addresses that hold slots in the VIP's table. */
  readonly serving: readonly string[];
  /** Listed without slots: routed around when failing, never counted to fail open. */
  readonly idle?: readonly string[];
}

/** The addresses to mark down: failing for some VIP, and never every serving backend of one VIP. */
export function routeAround(vips: readonly VipBackends[], failing: (vip: string, address: string) => boolean): Set<string> {
  const down = new Set<string>();
  for (const v of vips) for (const a of [...v.serving, ...(v.idle ?? [])]) if (failing(v.name, a)) down.add(a);
  // Fail open per VIP; taking addresses out of `down` cannot leave another VIP without a backend up.
  for (const v of vips) {
    if (v.serving.length > 0 && v.serving.every((a) => down.has(a))) for (const a of v.serving) down.delete(a);
  }
  return down;
}
