// health-checker.ts: runs the probes of every (VIP, backend) pair the agent is
// told about and reports transitions. Level-triggered: `setTargets` is given
// the whole wanted set each time; loops start for new pairs, stop for gone
// ones, and restart when a pair's probe settings change. Results go through
// the pure state machine in core/health.ts, so a backend flips only after its
// threshold of consecutive probes.
import { INITIAL_HEALTH, observeProbe, type HealthState, type Thresholds } from '../core/health.js';
import { probe as realProbe, type ProbeResult, type ProbeTarget } from './probe.js';

export interface HealthTarget extends ProbeTarget, Thresholds {
  /** Identity of the pair, e.g. "vip-name/10.0.0.1". */
  readonly key: string;
  readonly intervalMs: number;
}

export interface HealthCheckerDeps {
  readonly probe?: (t: ProbeTarget) => Promise<ProbeResult>;
  /** Called when a pair's health flips (after its threshold). */
  readonly onChange: (key: string, healthy: boolean, last: ProbeResult) => void;
  /** Called after every probe (metrics). */
  readonly onProbe?: (key: string, result: ProbeResult) => void;
}

interface Loop {
  target: HealthTarget;
  state: HealthState;
  timer: NodeJS.Timeout | null;
  stopped: boolean;
}

const settings = (t: HealthTarget): string =>
  JSON.stringify([t.type, t.address, t.port, t.path, t.timeoutMs, t.intervalMs, t.healthyThreshold, t.unhealthyThreshold]);

/** What the agent reads of its health checks, wherever they run (here, or on the failover thread). */
export interface Health {
  setTargets(targets: readonly HealthTarget[]): void;
  /** Pairs not probed are healthy. */
  healthy(key: string): boolean;
  /** Healthy or not; null when not probed. */
  measured(key: string): boolean | null;
  snapshot(): Map<string, HealthState>;
  stop(): void;
}

/**
 * How long the state of a probe no longer wanted is remembered: a target
 * that comes back within it (a settings change, or a source rebuilt while
 * tables change hands) resumes where it was, instead of healthy, which would
 * bring a dead backend back into the datapath until it fails again.
 */
export const REMEMBER_STOPPED_MS = 60_000;

/** States of probes stopped, kept for REMEMBER_STOPPED_MS to resume with. */
export class StoppedStates {
  readonly #states = new Map<string, { state: HealthState; at: number }>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  remember(key: string, state: HealthState): void {
    this.#states.set(key, { state, at: this.#now() });
  }

  /** The state `key` had when stopped, if recent; forgotten once taken. */
  take(key: string): HealthState | undefined {
    const e = this.#states.get(key);
    this.#states.delete(key);
    return e !== undefined && this.#now() - e.at <= REMEMBER_STOPPED_MS ? e.state : undefined;
  }

  /** Drops what is too old to resume with. */
  prune(): void {
    const now = this.#now();
    for (const [key, e] of this.#states) if (now - e.at > REMEMBER_STOPPED_MS) this.#states.delete(key);
  }
}

export class HealthChecker implements Health {
  readonly #loops = new Map<string, Loop>();
  readonly #previous = new StoppedStates();
  readonly #probe: (t: ProbeTarget) => Promise<ProbeResult>;
  readonly #deps: HealthCheckerDeps;
  #stopped = false;

  constructor(deps: HealthCheckerDeps) {
    this.#deps = deps;
    this.#probe = deps.probe ?? realProbe;
  }

  /** Makes the running probes exactly `targets`. Health state survives a settings change. */
  setTargets(targets: readonly HealthTarget[]): void {
    if (this.#stopped) return;
    const wanted = new Map(targets.map((t) => [t.key, t]));
    for (const [key, loop] of this.#loops) {
      const t = wanted.get(key);
      if (t === undefined || settings(t) !== settings(loop.target)) this.#stop(key);
    }
    for (const [key, t] of wanted) {
      if (!this.#loops.has(key)) this.#start(t, this.#previous.take(key) ?? INITIAL_HEALTH);
    }
    this.#previous.prune();
  }

  /** Current health of a pair; pairs not probed are healthy. */
  healthy(key: string): boolean {
    return this.#loops.get(key)?.state.healthy ?? true;
  }

  /** What the probes of a pair found: healthy or not; null when it is not probed. */
  measured(key: string): boolean | null {
    return this.#loops.get(key)?.state.healthy ?? null;
  }

  /** The state of one probed pair, or undefined when it is not probed. */
  stateOf(key: string): HealthState | undefined {
    return this.#loops.get(key)?.state;
  }

  snapshot(): Map<string, HealthState> {
    return new Map([...this.#loops].map(([k, l]) => [k, l.state]));
  }

  /** Stops every probe for good: later setTargets calls do nothing. */
  stop(): void {
    this.#stopped = true;
    for (const key of [...this.#loops.keys()]) this.#stop(key);
  }

  #start(target: HealthTarget, state: HealthState): void {
    const loop: Loop = { target, state, timer: null, stopped: false };
    this.#loops.set(target.key, loop);
    // Spread first probes over one interval so many backends do not probe in lockstep.
    const jitter = Math.floor(Math.random() * Math.min(target.intervalMs, 50));
    loop.timer = setTimeout(() => void this.#tick(loop), jitter);
  }

  #stop(key: string): void {
    const loop = this.#loops.get(key);
    if (loop === undefined) return;
    loop.stopped = true;
    if (loop.timer !== null) clearTimeout(loop.timer);
    this.#previous.remember(key, loop.state);
    this.#loops.delete(key);
  }

  async #tick(loop: Loop): Promise<void> {
    const started = performance.now();
    const result = await this.#probe(loop.target);
    if (loop.stopped) return;
    const { state, changed } = observeProbe(loop.state, result.ok, loop.target);
    loop.state = state;
    this.#deps.onProbe?.(loop.target.key, result);
    if (changed) this.#deps.onChange(loop.target.key, state.healthy, result);
    const wait = Math.max(0, loop.target.intervalMs - (performance.now() - started));
    loop.timer = setTimeout(() => void this.#tick(loop), wait);
  }
}
