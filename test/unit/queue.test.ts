// queue.test.ts: the operator's keyed work queue: de-duplication, one
// reconcile per key at a time, backoff on errors, reset on success, and a
// stop (lost leadership) followed by a start (leadership won again).
import { describe, expect, it } from 'vitest';
import { WorkQueue, type Clock } from '../../src/operator/queue.js';

/** A clock the test advances by hand. */
class ManualClock implements Clock {
  t = 0;
  timers: { at: number; fn: () => void; id: number }[] = [];
  #id = 0;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#id;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  advance(ms: number): void {
    this.t += ms;
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const d of due) d.fn();
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('work queue', () => {
  it('de-duplicates a key added many times while it waits', async () => {
    const runs: string[] = [];
    const gate = deferred();
    const q = new WorkQueue(
      async (k) => {
        runs.push(k);
        if (k === 'busy') await gate.promise;
      },
      { workers: 1 },
    );
    q.add('busy'); // occupies the only worker, so the adds below wait
    for (let i = 0; i < 10; i++) q.add('a');
    q.add('b');
    q.add('a');
    gate.resolve();
    await q.idle();
    expect(runs).toEqual(['busy', 'a', 'b']);
  });

  it('never runs one key twice at once; an add during a run causes exactly one more run', async () => {
    let concurrent = 0;
    let max = 0;
    let runs = 0;
    const gates: ReturnType<typeof deferred>[] = [];
    const q = new WorkQueue(
      async () => {
        concurrent++;
        max = Math.max(max, concurrent);
        runs++;
        const g = deferred();
        gates.push(g);
        await g.promise;
        concurrent--;
      },
      { workers: 4 },
    );
    q.add('k');
    await Promise.resolve();
    q.add('k');
    q.add('k');
    q.add('k');
    gates[0]!.resolve();
    await new Promise((r) => setTimeout(r, 0));
    expect(gates).toHaveLength(2);
    gates[1]!.resolve();
    await q.idle();
    expect(max).toBe(1);
    expect(runs).toBe(2);
  });

  it('retries a failing key with exponential backoff and resets after success', async () => {
    const clock = new ManualClock();
    let fail = 3;
    const attempts: number[] = [];
    const retries: number[] = [];
    const q = new WorkQueue(
      async () => {
        attempts.push(clock.now());
        if (fail-- > 0) throw new Error('boom');
      },
      { clock, baseBackoffMs: 100, onError: (_k, _e, ms) => retries.push(ms) },
    );
    q.add('k');
    await q.idle();
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      await q.idle();
    }
    expect(retries).toEqual([100, 200, 400]);
    expect(attempts).toHaveLength(4);
    expect(q.length).toBe(0);
  });

  it('a fresh add supersedes a pending backoff', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const q = new WorkQueue(
      async () => {
        calls++;
        if (calls === 1) throw new Error('boom');
      },
      { clock, baseBackoffMs: 10_000 },
    );
    q.add('k');
    await q.idle();
    expect(clock.timers).toHaveLength(1);
    q.add('k');
    await q.idle();
    expect(calls).toBe(2);
    expect(clock.timers).toHaveLength(0);
  });

  it('of two delays for one key the earlier wins, and a later one never pushes it back', async () => {
    const clock = new ManualClock();
    const runs: number[] = [];
    const q = new WorkQueue(async () => void runs.push(clock.now()), { clock });
    q.addAfter('k', 300_000);
    q.addAfter('k', 1000);
    q.addAfter('k', 5000);
    expect(clock.timers.map((t) => t.at)).toEqual([1000]);
    clock.advance(1000);
    await q.idle();
    expect(runs).toEqual([1000]);
    expect(clock.timers).toHaveLength(0);
  });

  it('stop drops waiting work and pending retries', async () => {
    const clock = new ManualClock();
    const q = new WorkQueue(async () => {
      throw new Error('x');
    }, { clock });
    q.add('k');
    await q.idle();
    q.stop();
    expect(clock.timers).toHaveLength(0);
    q.add('j');
    expect(q.length).toBe(0);
  });

  it('starts again after stop (leadership regained): new keys run, a key still running from before never overlaps', async () => {
    const clock = new ManualClock();
    const running = new Set<string>();
    let overlapped = false;
    const runs: string[] = [];
    const gate = deferred();
    const q = new WorkQueue(
      async (k) => {
        overlapped ||= running.has(k);
        running.add(k);
        runs.push(k);
        try {
          if (k === 'slow' && runs.length === 1) await gate.promise;
          if (k === 'failing') throw new Error('boom');
        } finally {
          running.delete(k);
        }
      },
      { clock, workers: 4, baseBackoffMs: 100 },
    );
    q.add('slow');
    q.add('failing');
    await new Promise((r) => setTimeout(r, 0));
    expect(clock.timers).toHaveLength(1); // the retry of 'failing'
    q.stop();
    expect(q.stopped).toBe(true);
    expect(clock.timers).toHaveLength(0);
    q.add('dropped');
    q.start();
    expect(q.stopped).toBe(false);
    q.add('slow'); // still running from the last term: runs once more after it
    q.add('fresh');
    gate.resolve();
    await q.idle();
    expect(runs).toEqual(['slow', 'failing', 'fresh', 'slow']);
    expect(overlapped).toBe(false);
    // Backoff state was reset by the stop: the first failure of the new term waits the base delay.
    q.add('failing');
    await q.idle();
    expect(clock.timers.map((t) => t.at - clock.now())).toEqual([100]);
  });
});

describe('work queue observer (operator metrics)', () => {
  it('reports depth, how long a key waited, and how long each reconcile took and whether it failed', async () => {
    const clock = new ManualClock();
    const gates = new Map<string, ReturnType<typeof deferred>>();
    const seen: string[] = [];
    const q = new WorkQueue(
      async (key) => {
        const g = deferred();
        gates.set(key, g);
        await g.promise;
        if (key === 'bad') throw new Error('no');
      },
      {
        workers: 1,
        clock,
        observer: { depth: (n) => seen.push(`depth ${n}`), waited: (ms) => seen.push(`waited ${ms}`), done: (ms, ok) => seen.push(`done ${ms} ${ok}`) },
      },
    );
    q.add('a');
    q.add('bad');
    clock.t = 40;
    gates.get('a')!.resolve();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    clock.t = 100;
    gates.get('bad')!.resolve();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['waited 0', 'depth 0', 'depth 1', 'done 40 true', 'waited 40', 'depth 0', 'done 60 false', 'depth 0']);
    q.stop();
  });
});
