// model.ts: what `xdplb demo` measures, as plain data: traffic samples
// (running totals from the client), events, per-node tables, and the summary
// printed with --json. Pure functions over it feed the terminal view and the
// HTML report; nothing here does I/O.

export interface BackendInfo {
  readonly name: string;
  readonly address: string;
  weight: number;
  /** 'serving', or why not. */
  state: 'serving' | 'killed' | 'starting';
}

/** Running totals printed by the client every few hundred milliseconds. */
export interface TrafficSample {
  /** Seconds since the traffic started. */
  readonly t: number;
  readonly ok: number;
  readonly failed: number;
  readonly byBackend: Readonly<Record<string, number>>;
}

export interface DemoEvent {
  readonly t: number;
  readonly kind: 'info' | 'kill' | 'programmed' | 'add' | 'measure' | 'warn';
  readonly text: string;
}

export interface NodeTable {
  digest: string | null;
  serving: number | null;
  generation: number;
}

export interface DemoSummary {
  vip: { name: string; address: string; port: number; mode: string; tableSize: number };
  nodes: string[];
  durationSeconds: number;
  /** Kill of a backend's server to that node routing around it in its datapath, per node (null: not measured). */
  failoverMs: Record<string, number | null>;
  /** Failed new connections between the kill and both nodes' maps updated. */
  failedDuringFailover: number | null;
  /** Fraction of established flows whose table slot changed owner at the scale-out (from the two published tables). */
  moved: number | null;
  /** Established connections that broke at the scale-out, as the client counted them. */
  broken: number | null;
  /** The fewest flows any balanced table had to move (fraction). */
  minimum: number | null;
  /** Fraction of table slots that changed owner. */
  movedSlots: number | null;
  /** Established connections measured at the scale-out. */
  flowsMeasured: number;
  requests: { ok: number; failed: number };
  distribution: Record<string, { address: string; weight: number; flows: number; share: number; expected: number }>;
  events: DemoEvent[];
  report: string | null;
  complete: boolean;
}

/** Flows per backend between two samples (new connections answered). */
export function flowsBetween(from: TrafficSample | undefined, to: TrafficSample): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, n] of Object.entries(to.byBackend)) out[name] = n - (from?.byBackend[name] ?? 0);
  return out;
}

/** The newest sample at or before `t` (seconds), or undefined. */
export function sampleAt(samples: readonly TrafficSample[], t: number): TrafficSample | undefined {
  let found: TrafficSample | undefined;
  for (const s of samples) {
    if (s.t > t) break;
    found = s;
  }
  return found;
}

/** Requests per second (ok and failed) over the `window` seconds before the last sample. */
export function rateOver(samples: readonly TrafficSample[], window: number): { ok: number; failed: number } {
  const last = samples.at(-1);
  if (last === undefined) return { ok: 0, failed: 0 };
  const first = sampleAt(samples, last.t - window) ?? samples[0]!;
  const span = last.t - first.t;
  if (span <= 0) return { ok: 0, failed: 0 };
  return { ok: (last.ok - first.ok) / span, failed: (last.failed - first.failed) / span };
}

/** Per-second series for the report's timeline: ok and failed connections in each bucket. */
export function timeline(samples: readonly TrafficSample[], bucket = 0.5): { t: number; ok: number; failed: number }[] {
  const out: { t: number; ok: number; failed: number }[] = [];
  let prev: TrafficSample | undefined;
  let edge = bucket;
  for (const s of samples) {
    if (s.t < edge) continue;
    const ok = s.ok - (prev?.ok ?? 0);
    const failed = s.failed - (prev?.failed ?? 0);
    const span = s.t - (prev?.t ?? 0);
    out.push({ t: s.t, ok: span > 0 ? ok / span : 0, failed: span > 0 ? failed / span : 0 });
    prev = s;
    edge = s.t + bucket;
  }
  return out;
}

/** Expected shares by weight over the serving backends. */
export function expectedShares(backends: readonly BackendInfo[]): Record<string, number> {
  const serving = backends.filter((b) => b.state === 'serving');
  const total = serving.reduce((a, b) => a + b.weight, 0);
  return Object.fromEntries(backends.map((b) => [b.name, b.state === 'serving' && total > 0 ? b.weight / total : 0]));
}

/** Percentage with one decimal. */
export function pct(x: number | null): string {
  return x === null ? 'n/a' : `${(x * 100).toFixed(1)}%`;
}

/** A digest shortened for display: sha256:3a4b5c6d. */
export function shortDigest(d: string | null): string {
  return d === null ? '(none yet)' : `${d.slice(0, 15)}…`;
}
