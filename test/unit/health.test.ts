// health.test.ts: the health state machine flips only after its thresholds,
// and the checker drives it with real TCP and HTTP probes on loopback.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthChecker, REMEMBER_STOPPED_MS, StoppedStates, type HealthTarget } from '../../src/agent/health-checker.js';
import { probe } from '../../src/agent/probe.js';
import { INITIAL_HEALTH, observeProbe, type HealthState } from '../../src/core/health.js';

describe('health state machine', () => {
  const t = { healthyThreshold: 3, unhealthyThreshold: 2 };
  const run = (results: boolean[], start: HealthState = INITIAL_HEALTH) =>
    results.reduce<{ s: HealthState; flips: number }>(
      (acc, ok) => {
        const r = observeProbe(acc.s, ok, t);
        return { s: r.state, flips: acc.flips + (r.changed ? 1 : 0) };
      },
      { s: start, flips: 0 },
    );

  it('goes down after unhealthyThreshold consecutive failures and back after healthyThreshold successes', () => {
    expect(run([false]).s.healthy).toBe(true);
    expect(run([false, false]).s.healthy).toBe(false);
    expect(run([false, false, true, true]).s.healthy).toBe(false);
    expect(run([false, false, true, true, true]).s.healthy).toBe(true);
  });

  it('never flaps on alternating results', () => {
    expect(run([false, true, false, true, false, true]).flips).toBe(0);
  });

  it('flips only when the last `threshold` results all disagree with the previous state', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 60 }), (results) => {
        let s = INITIAL_HEALTH;
        results.forEach((ok, i) => {
          const r = observeProbe(s, ok, t);
          if (r.changed) {
            const need = ok ? t.healthyThreshold : t.unhealthyThreshold;
            expect(results.slice(i + 1 - need, i + 1).every((x) => x === ok)).toBe(true);
            expect(s.healthy).toBe(!ok);
          }
          s = r.state;
        });
      }),
    );
  });
});

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

async function listen(server: Server | HttpServer, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

describe('probes (real sockets on loopback)', () => {
  it('tcp: a listening port is ok, a closed one is refused', async () => {
    const port = await listen(createServer((s) => s.destroy()));
    expect(await probe({ type: 'tcp', address: '127.0.0.1', port, path: '/', timeoutMs: 500 })).toMatchObject({ ok: true });
    const closed = createServer();
    const closedPort = await listen(closed);
    await closers.pop()!();
    expect(await probe({ type: 'tcp', address: '127.0.0.1', port: closedPort, path: '/', timeoutMs: 500 })).toMatchObject({ ok: false, detail: 'ECONNREFUSED' });
  });

  it('http: 2xx is ok, 5xx is not, silence times out', async () => {
    const port = await listen(
      createHttpServer((req, res) => {
        if (req.url === '/hang') return; // never answers
        res.statusCode = req.url === '/ok' ? 200 : 503;
        res.end();
      }),
    );
    // Answers get a generous timeout (the first HTTP request of a busy test worker can take over 150 ms); silence a short one.
    const base = { type: 'http' as const, address: '127.0.0.1', port, timeoutMs: 5000 };
    expect(await probe({ ...base, path: '/ok' })).toMatchObject({ ok: true, detail: 'HTTP 200' });
    expect(await probe({ ...base, path: '/bad' })).toMatchObject({ ok: false, detail: 'HTTP 503' });
    const hung = await probe({ ...base, path: '/hang', timeoutMs: 150 });
    expect(hung).toMatchObject({ ok: false, detail: 'timeout' });
    expect(hung.ms).toBeGreaterThanOrEqual(140);
  });
});

describe('health checker', () => {
  it('reports a backend down after its threshold when its server stops, and up when it returns', async () => {
    const server = createServer((s) => s.destroy());
    const port = await listen(server);
    const events: [string, boolean][] = [];
    const checker = new HealthChecker({ onChange: (key, healthy) => events.push([key, healthy]) });
    closers.push(async () => checker.stop());
    const target: HealthTarget = {
      key: 'web/127.0.0.1',
      type: 'tcp',
      address: '127.0.0.1',
      port,
      path: '/',
      timeoutMs: 50,
      intervalMs: 20,
      healthyThreshold: 2,
      unhealthyThreshold: 2,
    };
    checker.setTargets([target]);
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toEqual([]);
    expect(checker.healthy(target.key)).toBe(true);

    await new Promise<void>((r) => server.close(() => r()));
    await expect.poll(() => events.length, { timeout: 2000, interval: 5 }).toBe(1);
    expect(events[0]).toEqual([target.key, false]);

    await listen(createServer((s) => s.destroy()), port);
    await expect.poll(() => events.length, { timeout: 2000, interval: 5 }).toBe(2);
    expect(events[1]).toEqual([target.key, true]);

    checker.setTargets([]);
    expect(checker.snapshot().size).toBe(0);
  });

  it('a probe dropped and wanted again resumes its state: a dead backend is not healthy again until it passes', async () => {
    const server = createServer((s) => s.destroy());
    const port = await listen(server);
    await new Promise<void>((r) => server.close(() => r()));
    const events: [string, boolean][] = [];
    const checker = new HealthChecker({ onChange: (key, healthy) => events.push([key, healthy]) });
    closers.push(async () => checker.stop());
    const target: HealthTarget = { key: 'tcp|127.0.0.1|x', type: 'tcp', address: '127.0.0.1', port, path: '/', timeoutMs: 50, intervalMs: 20, healthyThreshold: 2, unhealthyThreshold: 2 };
    checker.setTargets([target]);
    await expect.poll(() => checker.measured(target.key), { timeout: 2000, interval: 5 }).toBe(false);
    // A source rebuilt without it (tables changing hands), then with it again.
    checker.setTargets([]);
    expect(checker.measured(target.key)).toBeNull();
    checker.setTargets([target]);
    expect(checker.measured(target.key)).toBe(false);
    expect(events).toEqual([[target.key, false]]);
  });
});

describe('stopped states', () => {
  it('are resumed once, and only while recent', () => {
    let now = 0;
    const stopped = new StoppedStates(() => now);
    const down = { healthy: false, streak: 0, probes: 9, lastOk: false };
    stopped.remember('a', down);
    stopped.remember('b', down);
    expect(stopped.take('a')).toEqual(down);
    expect(stopped.take('a')).toBeUndefined();
    now = REMEMBER_STOPPED_MS + 1;
    expect(stopped.take('b')).toBeUndefined();
  });
});
