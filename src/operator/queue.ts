// queue.ts: the keyed work queue under the operator's reconcilers (what
// controller-runtime's workqueue does for Go controllers). Informer callbacks
// only add keys. A key waiting is never queued twice; a key being reconciled
// is never reconciled concurrently (added again meanwhile, it runs once more
// after); a failed reconcile is retried with per-key exponential backoff; a
// success resets it. stop() drops everything waiting and refuses keys until
// start() (a leader that lost its lease stops, and starts again when it wins
// it back: one queue for the process, so a reconcile still running from the
// last term never overlaps the next term's run of the same key). Timers come
// from an injected clock, so tests control time.

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface QueueOptions {
  /** Reconciles running at once (each for a different key). */
  readonly workers?: number;
  readonly baseBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly clock?: Clock;
  /** Called when a reconcile throws (after scheduling its retry). */
  readonly onError?: (key: string, error: unknown, retryInMs: number) => void;
  readonly observer?: QueueObserver;
}

export type Reconcile = (key: string) => Promise<void>;

/** What the queue reports as it works (metrics.ts). */
export interface QueueObserver {
  /** Keys waiting now. */
  depth(n: number): void;
  /** A key waited this long between its add and its reconcile's start. */
  waited(ms: number): void;
  /** A reconcile finished after `ms`; not ok: it failed and is retried with backoff. */
  done(ms: number, ok: boolean): void;
}

export class WorkQueue {
  readonly #reconcile: Reconcile;
  readonly #workers: number;
  readonly #base: number;
  readonly #max: number;
  readonly #clock: Clock;
  readonly #onError: QueueOptions['onError'];
  readonly #observer: QueueObserver | undefined;
  /** When each waiting key was added. */
  readonly #addedAt = new Map<string, number>();
  readonly #waiting: string[] = [];
  readonly #queued = new Set<string>();
  readonly #running = new Set<string>();
  readonly #again = new Set<string>();
  readonly #failures = new Map<string, number>();
  /** Keys queued later: their timer, and when it fires (the clock's time). */
  readonly #delayed = new Map<string, { readonly timer: unknown; readonly due: number }>();
  #active = 0;
  #stopped = false;
  #idle: (() => void)[] = [];

  constructor(reconcile: Reconcile, options: QueueOptions = {}) {
    this.#reconcile = reconcile;
    this.#workers = options.workers ?? 2;
    this.#base = options.baseBackoffMs ?? 100;
    this.#max = options.maxBackoffMs ?? 60_000;
    this.#clock = options.clock ?? realClock;
    this.#onError = options.onError;
    this.#observer = options.observer;
  }

  /** Queue a key now (de-duplicated). */
  add(key: string): void {
    if (this.#stopped) return;
    const delayed = this.#delayed.get(key);
    if (delayed !== undefined) {
      // A fresh event supersedes a pending backoff retry: the world changed.
      this.#clock.clearTimeout(delayed.timer);
      this.#delayed.delete(key);
    }
    if (this.#running.has(key)) {
      this.#again.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#addedAt.set(key, this.#clock.now());
    this.#waiting.push(key);
    this.#pump();
  }

  /** Queue a key after a delay (unless it is queued sooner). */
  addAfter(key: string, ms: number): void {
    if (this.#stopped) return;
    const due = this.#clock.now() + ms;
    const pending = this.#delayed.get(key);
    // The earlier of two delays wins: a long one (a drain's end) must not hold back a short one (a retry).
    if (pending !== undefined) {
      if (pending.due <= due) return;
      this.#clock.clearTimeout(pending.timer);
    }
    const timer = this.#clock.setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { timer, due });
  }

  /** Keys waiting, running or delayed. */
  get length(): number {
    return this.#waiting.length + this.#running.size + this.#delayed.size;
  }

  /** Resolves when nothing is waiting or running (delayed retries may remain). */
  idle(): Promise<void> {
    if (this.#waiting.length === 0 && this.#active === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Drops waiting keys, pending retries and backoff state, and ignores adds
   * until start(). Reconciles already running finish (their keys stay
   * exclusive: added after a restart, they run once more when done).
   */
  stop(): void {
    this.#stopped = true;
    for (const h of this.#delayed.values()) this.#clock.clearTimeout(h.timer);
    this.#delayed.clear();
    this.#waiting.length = 0;
    this.#queued.clear();
    this.#addedAt.clear();
    this.#again.clear();
    this.#failures.clear();
    this.#pump();
  }

  /** Accepts keys again after stop() (a new queue starts accepting at once). */
  start(): void {
    this.#stopped = false;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  #pump(): void {
    while (this.#active < this.#workers && this.#waiting.length > 0) {
      const key = this.#waiting.shift()!;
      this.#queued.delete(key);
      const added = this.#addedAt.get(key);
      this.#addedAt.delete(key);
      if (added !== undefined) this.#observer?.waited(this.#clock.now() - added);
      this.#running.add(key);
      this.#active++;
      void this.#run(key);
    }
    this.#observer?.depth(this.#waiting.length);
    if (this.#active === 0 && this.#waiting.length === 0) {
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  async #run(key: string): Promise<void> {
    const started = this.#clock.now();
    try {
      await this.#reconcile(key);
      this.#failures.delete(key);
      this.#observer?.done(this.#clock.now() - started, true);
    } catch (e) {
      this.#observer?.done(this.#clock.now() - started, false);
      const n = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, n);
      const wait = Math.min(this.#max, this.#base * 2 ** (n - 1));
      if (!this.#again.has(key)) this.addAfter(key, wait);
      this.#onError?.(key, e, wait);
    } finally {
      this.#running.delete(key);
      this.#active--;
      if (this.#again.delete(key)) this.add(key);
      this.#pump();
    }
  }
}
