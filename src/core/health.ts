// health.ts: the health of one probed backend as a pure state machine. A
// result flips only after `threshold` consecutive probes disagree with it
// (unhealthyThreshold failures to go down, healthyThreshold successes to come
// back), so one lost probe never flaps a backend. A new backend starts healthy:
// the agent serves it at once and lets probes take it out, as a restarted agent
// must not pull every backend for the first thresholds' worth of probes.

export interface Thresholds {
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
}

export interface HealthState {
  readonly healthy: boolean;
  /** Consecutive probes that disagreed with `healthy`. */
  readonly streak: number;
  /** Probes observed in total, and the last one's outcome. */
  readonly probes: number;
  readonly lastOk: boolean | null;
}

export const INITIAL_HEALTH: HealthState = Object.freeze({ healthy: true, streak: 0, probes: 0, lastOk: null });

/** The state after one more probe result. `changed` is true when `healthy` flipped. */
export function observeProbe(state: HealthState, ok: boolean, t: Thresholds): { state: HealthState; changed: boolean } {
  const probes = state.probes + 1;
  if (ok === state.healthy) return { state: { healthy: state.healthy, streak: 0, probes, lastOk: ok }, changed: false };
  const streak = state.streak + 1;
  const needed = ok ? t.healthyThreshold : t.unhealthyThreshold;
  if (streak >= needed) return { state: { healthy: ok, streak: 0, probes, lastOk: ok }, changed: true };
  return { state: { healthy: state.healthy, streak, probes, lastOk: ok }, changed: false };
}

/**
 * A health check's identity on a node: what is probed on a backend, not who
 * asked ("tcp:80", "http:8080/healthz"). Every VIP checking a backend the
 * same way shares one probe, and the node reports each backend's health per
 * check: the operator finds a VIP's view through its check.
 */
export function checkId(type: 'tcp' | 'http', port: number, path?: string): string {
  return type === 'http' ? `http:${port}${path ?? '/'}` : `tcp:${port}`;
}
