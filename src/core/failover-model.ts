// failover-model.ts: what the agent's failover thread needs to route around
// a backend on its own, without the reconcile loop: per VIP, the addresses it
// lists (those holding slots, and idle ones at weight 0) with the probe that
// answers for each and whether its endpoint is out, and the backend index
// each address has in the maps. Plain data (it crosses to a worker thread).
// `downWrites` is the decision: routeAround (core/down.ts, failing open per
// VIP) over what the probes find now, minus what is already down. Pure.
import { routeAround } from './down.js';

export interface FailoverBackend {
  readonly address: string;
  readonly probe: string | null;
  readonly out: boolean;
  /** Listed without slots (weight 0): marked down when failing, never counted to fail open (core/down.ts). */
  readonly idle?: boolean;
}

export interface FailoverVip {
  readonly name: string;
  readonly serving: readonly FailoverBackend[];
}

export interface FailoverModel {
  /** False: only the operator's tables take backends out (--route-around off). */
  readonly enabled: boolean;
  readonly vips: readonly FailoverVip[];
  /** Backend address -> its index in the maps. */
  readonly indexOf: readonly (readonly [string, number])[];
  /** Backend indices down in the maps. */
  readonly down: readonly number[];
}

export const EMPTY_FAILOVER_MODEL: FailoverModel = { enabled: false, vips: [], indexOf: [], down: [] };

/**
 * The addresses to route around now: routeAround (failing open per VIP) over
 * what each probe finds (false: failing) and the endpoints out. The one
 * decision both the failover thread and the reconcile pass take.
 */
export function downAddresses(model: Pick<FailoverModel, 'enabled' | 'vips'>, measured: (probe: string) => boolean | null): Set<string> {
  if (!model.enabled) return new Set();
  const entries = new Map<string, { probe: string | null; out: boolean }>();
  for (const v of model.vips) for (const s of v.serving) entries.set(`${v.name}|${s.address}`, s);
  return routeAround(
    model.vips.map((v) => ({ name: v.name, serving: v.serving.filter((s) => s.idle !== true).map((s) => s.address), idle: v.serving.filter((s) => s.idle === true).map((s) => s.address) })),
    (vip, address) => {
      const e = entries.get(`${vip}|${address}`);
      return e !== undefined && (e.out || (e.probe !== null && measured(e.probe) === false));
    },
  );
}

/** The backends (address, index) to mark down now, given what each probe finds (false: failing). */
export function downWrites(model: FailoverModel, measured: (probe: string) => boolean | null, alreadyDown: ReadonlySet<number>): { address: string; index: number }[] {
  const down = downAddresses(model, measured);
  const indexOf = new Map(model.indexOf);
  const out: { address: string; index: number }[] = [];
  for (const address of [...down].sort()) {
    const index = indexOf.get(address);
    if (index !== undefined && !alreadyDown.has(index)) out.push({ address, index });
  }
  return out;
}
