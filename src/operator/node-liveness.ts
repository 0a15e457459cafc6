// node-liveness.ts: which NodeReports still count. An agent rewrites its
// report at least every `reportIntervalSeconds` (it says the interval in the
// report); a report the operator has not seen change for three intervals, by
// the operator's own clock (so agents' clocks need not agree with it), is
// stale: its node no longer votes in the health quorum and is not expected
// to program anything. A report whose Node was deleted is removed. Staleness
// turning on or off, or a report appearing or going, re-queues every VIP; a
// report's content changing re-queues the VIPs whose part of it changed (their
// entry, or a backend entry that lists them); a heartbeat that changes
// nothing else re-queues none.
import type { Logger } from 'pino';
import { parseProgrammedEntry } from '../api/nodereport.js';
import { jsonEqual } from '../core/conditions.js';
import type { Obj } from '../kube/k8s.js';

/** Intervals without a change after which a report is stale. */
export const STALE_INTERVALS = 3;
/** The interval assumed for a report that does not state one. */
export const DEFAULT_REPORT_INTERVAL_SECONDS = 10;

export interface LivenessDeps {
  readonly now: () => number;
  /** Something that decides changed: re-queue these VIPs ("namespace/name") and those with these backends, or every VIP. */
  readonly changed: (change: ReportChange) => void;
  readonly log: Logger;
}

interface Seen {
  version: string;
  content: unknown;
  at: number;
  staleAfterMs: number;
  stale: boolean;
}

/** What of a report the operator decides on: its status without the heartbeat time. */
function contentOf(o: Obj): unknown {
  const { observedTime: _t, ...rest } = (o.status ?? {}) as Record<string, unknown>;
  return rest;
}

function intervalOf(o: Obj): number {
  const n = Number((o.status as Record<string, unknown> | undefined)?.reportIntervalSeconds);
  return Number.isFinite(n) && n > 0 ? n : DEFAULT_REPORT_INTERVAL_SECONDS;
}

export class NodeLiveness {
  readonly #d: LivenessDeps;
  readonly #seen = new Map<string, Seen>();

  constructor(deps: LivenessDeps) {
    this.#d = deps;
  }

  /** A report was added or updated (informer event). */
  observe(o: Obj): void {
    const name = o.metadata!.name!;
    const version = o.metadata!.resourceVersion ?? '';
    const prev = this.#seen.get(name);
    const content = contentOf(o);
    const staleAfterMs = intervalOf(o) * STALE_INTERVALS * 1000;
    if (prev !== undefined && prev.version === version) return;
    const wasStale = prev?.stale ?? false;
    this.#seen.set(name, { version, content, at: this.#d.now(), staleAfterMs, stale: false });
    if (wasStale) this.#d.log.info({ kind: 'NodeReport', name }, 'NodeReport is fresh again; its node counts');
    if (prev === undefined || wasStale) this.#d.changed('all');
    else {
      const change = changedVips(prev.content, content);
      if (change === 'all' || change.vips.size > 0 || change.addresses.size > 0) this.#d.changed(change);
    }
  }

  /** A report was deleted. */
  forget(name: string): void {
    if (this.#seen.delete(name)) this.#d.changed('all');
  }

  /** Whether the report counts now. Unknown reports do not. */
  fresh(name: string): boolean {
    const s = this.#seen.get(name);
    return s !== undefined && !s.stale && this.#d.now() - s.at <= s.staleAfterMs;
  }

  /** Marks reports that went stale since the last sweep; re-queues when any did. Returns their names. */
  sweep(): string[] {
    const now = this.#d.now();
    const newlyStale: string[] = [];
    for (const [name, s] of this.#seen) {
      if (!s.stale && now - s.at > s.staleAfterMs) {
        s.stale = true;
        newlyStale.push(name);
        this.#d.log.warn({ kind: 'NodeReport', name, silentMs: now - s.at }, 'NodeReport went stale; its node no longer counts');
      }
    }
    if (newlyStale.length > 0) this.#d.changed('all');
    return newlyStale;
  }

  /** Names of reports that are stale now. */
  staleReports(): string[] {
    return [...this.#seen.entries()].filter(([name]) => !this.fresh(name)).map(([name]) => name);
  }

  /** How often sweep() should run to notice staleness within a fraction of the shortest interval. */
  sweepEveryMs(): number {
    const shortest = Math.min(DEFAULT_REPORT_INTERVAL_SECONDS * STALE_INTERVALS * 1000, ...[...this.#seen.values()].map((s) => s.staleAfterMs));
    return Math.max(250, Math.floor(shortest / 6));
  }
}

type ReportContent = Record<string, unknown> & {
  programmed?: string[];
  vips?: { namespace?: string; name?: string }[];
  backends?: { address?: string; vips?: string[] }[];
};

/** What a report's change concerns: these VIPs ("namespace/name") and every VIP with these backend addresses; or all VIPs. */
export type ReportChange = 'all' | { readonly vips: ReadonlySet<string>; readonly addresses: ReadonlySet<string> };

/** Fields that only summarise others (a VIP's entry changing changes them too). */
const DERIVED = new Set(['programmedSummary']);

/**
 * The VIPs ("namespace/name") whose view of a node differs between two
 * report contents: their own entry (in `programmed` or `vips`) changed, or a backend entry (its address
 * is returned: the VIPs with that backend are concerned; an entry of an agent
 * from before checks lists its VIPs too). Any other field changing (the
 * interface, the XDP mode, the interval) concerns every VIP.
 */
export function changedVips(before: unknown, after: unknown): ReportChange {
  const a = (before ?? {}) as ReportContent;
  const b = (after ?? {}) as ReportContent;
  for (const field of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (field === 'programmed' || field === 'vips' || field === 'backends' || DERIVED.has(field)) continue;
    if (!jsonEqual(a[field], b[field])) return 'all';
  }
  const out = new Set<string>();
  const addresses = new Set<string>();
  const diff = <T>(x: readonly T[] | undefined, y: readonly T[] | undefined, key: (e: T) => string, owners: (e: T) => readonly string[]): void => {
    const byKey = new Map((x ?? []).map((e) => [key(e), e]));
    const seen = new Set<string>();
    for (const e of y ?? []) {
      const k = key(e);
      seen.add(k);
      const old = byKey.get(k);
      if (old === undefined || !jsonEqual(old, e)) for (const v of [...owners(e), ...(old === undefined ? [] : owners(old))]) out.add(v);
    }
    for (const [k, old] of byKey) if (!seen.has(k)) for (const v of owners(old)) out.add(v);
  };
  diff(a.vips, b.vips, (e) => `${e.namespace}/${e.name}`, (e) => [`${e.namespace}/${e.name}`]);
  const vipOf = (e: string): string => parseProgrammedEntry(String(e))?.key ?? String(e);
  diff(a.programmed, b.programmed, vipOf, (e) => [vipOf(e)]);
  diff(a.backends, b.backends, (e) => String(e.address), (e) => {
    addresses.add(String(e.address));
    return e.vips ?? [];
  });
  return { vips: out, addresses };
}
