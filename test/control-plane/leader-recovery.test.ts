// leader-recovery.test.ts: the operator survives an API outage in-process
// (issue 11, item 4). The leader cannot renew its Lease while kube-apiserver
// is down for longer than the lease: it steps down at once, keeps its caches
// and campaigns again, /healthz answering throughout; when the API server
// returns it leads again and reconciles a change made after the outage.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveHealth } from '../../src/operator/health.js';
import type { Kube } from '../../src/kube/k8s.js';
import { Operator } from '../../src/operator/operator.js';
import type { ControlPlane } from '../../lab/control-plane.js';
import { backendYaml, publishedTable, startOperatorPlane, webVipYaml } from '../support/operator-plane.js';
import { until } from '../../lab/wait.js';

const log = pino({ level: process.env.XDPLB_TEST_LOG ?? 'silent' });
let cp: ControlPlane;
let kube: Kube;
let op: Operator | undefined;
let health: Server | undefined;
let healthPort = 0;


/** GET on the health server: the status, or 0 when it does not answer. */
async function probe(path: string): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${healthPort}${path}`, { signal: AbortSignal.timeout(1000) })).status;
  } catch {
    return 0;
  }
}


beforeAll(async () => {
  ({ cp, kube } = await startOperatorPlane());
}, 180_000);

afterAll(async () => {
  health?.close();
  await op?.stop().catch(() => undefined);
  await cp?.stop();
});

describe('leader recovery after an API outage', () => {
  it('steps down when it cannot renew, campaigns in-process, leads again and reconciles once the API server returns', async () => {
    op = new Operator({ kube, namespace: 'xdplb-system', identity: 'op-a', leaderElect: true, leaseSeconds: 3, renewMs: 500, resyncSeconds: 30, workers: 2, log });
    // As main.ts wires it: /healthz while the process runs, /readyz while every watch runs.
    health = await serveHealth('127.0.0.1:0', () => op!.synced);
    healthPort = (health.address() as AddressInfo).port;
    await op.start();
    await cp.kubectl(['apply', '-f', '-'], {
      input:
        backendYaml('a', '10.0.0.1') +
        backendYaml('b', '10.0.0.2') +
        webVipYaml(),
    });
    const before = await until('the first published table', () => publishedTable(cp, 'shop', 'web'), 20_000);
    expect(op.leading).toBe(true);

    // Sample leadership and both probes through the outage and the recovery.
    const samples: { leading: boolean; healthz: number; readyz: number }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push({ leading: op!.leading, healthz: await probe('/healthz'), readyz: await probe('/readyz') });
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    let steppedDownMs: number;
    let ledAgainMs: number;
    let back: number;
    let after: NonNullable<Awaited<ReturnType<typeof publishedTable>>>;
    try {
      const down = Date.now();
      const steppedDown = until('the leader to step down (lease 3 s unrenewed)', () => !op!.leading, 12_000).then(() => Date.now() - down);
      await cp.stopApiserver();
      steppedDownMs = await steppedDown;
      await new Promise((r) => setTimeout(r, Math.max(0, 6000 - (Date.now() - down))));
      await cp.startApiserver();
      back = Date.now();

      await until('the operator to lead again after the API server returned', () => op!.leading, 10_000);
      ledAgainMs = Date.now() - back;
      await cp.kubectl(['apply', '-f', '-'], { input: backendYaml('c', '10.0.0.3') });
      after = await until(
        'the change made after the outage to be published',
        async () => {
          const t = await publishedTable(cp, 'shop', 'web');
          return t !== null && t.table.backends.some((b) => b.key === '10.0.0.3') ? t : null;
        },
        10_000,
      );
      await until('/readyz once every watch runs again', async () => (await probe('/readyz')) === 200, 10_000);
    } finally {
      sampling = false;
      await sampler;
    }
    console.log(`leader recovery: stepped down ${steppedDownMs} ms after the API server was told to stop; led again ${ledAgainMs} ms after it returned; published generation ${after.generation} ${Date.now() - back} ms after it returned`);

    expect(after.generation).toBe(before.generation + 1);
    expect(after.table.backends.map((b) => b.key)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    // Alive throughout: /healthz never failed, though the operator lost the lease and its watches.
    expect(samples.filter((s) => s.healthz !== 200)).toEqual([]);
    expect(samples.some((s) => !s.leading)).toBe(true);
    expect(samples.some((s) => s.readyz === 503)).toBe(true);
    expect(samples.at(-1)).toMatchObject({ leading: true, healthz: 200 });
  });
});
