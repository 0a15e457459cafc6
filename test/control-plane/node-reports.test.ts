// node-reports.test.ts: nodes that are gone stop voting (issue 11, item 6),
// against a real kube-apiserver and etcd. Two Nodes report on a VIP; one
// finds a backend unhealthy, which is not a majority of two. The other
// node's agent stops reporting: once its report is stale (three of its
// stated intervals without a change, by the operator's clock) it no longer
// counts, so the one fresh node is the majority and the backend leaves the
// table. Deleting the silent node's Node removes its report. The reports are
// written here as the agent writes them (status subresource, heartbeat every
// 500 ms): what is under test is the operator's reading of them. Then a
// change that the node programs at once costs the VIP one status write
// (the operator waits for the rollout to settle) and leaves Ready alone.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLURALS } from '../../src/api/coordinates.js';
import { programmedEntry } from '../../src/api/nodereport.js';
import type { Kube, Obj } from '../../src/kube/k8s.js';
import { Operator } from '../../src/operator/operator.js';
import type { ControlPlane } from '../../lab/control-plane.js';
import { backendYaml, publishedTable, startOperatorPlane, webVipYaml } from '../support/operator-plane.js';
import { until } from '../../lab/wait.js';

let cp: ControlPlane;
let kube: Kube;
let op: Operator;
const beats = new Map<string, NodeJS.Timeout>();


async function vipStatus(): Promise<{ nodes?: { programmed: number; expected: number } }> {
  return (JSON.parse((await cp.kubectl(['-n', 'shop', 'get', 'vip', 'web', '-o', 'json'])).stdout) as { status?: Record<string, never> }).status ?? {};
}

/** What an agent writes: its report, with `unhealthy` backends, every 500 ms (interval stated as 1 s). */
async function startReporting(node: string, unhealthy: string[]): Promise<void> {
  await cp.kubectl(['apply', '-f', '-'], { input: `apiVersion: xdplb.io/v1alpha1\nkind: NodeReport\nmetadata: { name: ${node}, namespace: xdplb-system }\nspec: { node: ${node} }\n` });
  const write = async (): Promise<void> => {
    await kube.patchStatus(PLURALS.reports, 'xdplb-system', node, {
      observedTime: new Date().toISOString(),
      reportIntervalSeconds: 1,
      vips: [],
      // Health per check, as agents report it: the VIP's check is its TCP check on port 80.
      backends: ['10.0.0.1', '10.0.0.2'].map((address) => ({ address, checks: [{ check: 'tcp:80', healthy: !unhealthy.includes(address) }], resolved: true })),
    });
  };
  await write();
  beats.set(node, setInterval(() => void write().catch(() => undefined), 500));
}

beforeAll(async () => {
  ({ cp, kube } = await startOperatorPlane());
  // Node objects as the kubelets would register them (no kubelet runs here).
  for (const n of ['lb-1', 'lb-2']) await cp.kubectl(['apply', '-f', '-'], { input: `apiVersion: v1\nkind: Node\nmetadata: { name: ${n} }\n` });
  op = new Operator({ kube, namespace: 'xdplb-system', identity: 'op', leaderElect: true, leaseSeconds: 3, renewMs: 500, resyncSeconds: 30, workers: 2, log: pino({ level: process.env.XDPLB_TEST_LOG ?? 'silent' }) });
  await op.start();
}, 180_000);

afterAll(async () => {
  for (const t of beats.values()) clearInterval(t);
  await op?.stop();
  await cp?.stop();
});

describe('NodeReports count only while fresh', () => {
  it('a node that stops reporting stops voting: the one fresh node is the majority', async () => {
    await cp.kubectl(['apply', '-f', '-'], { input: backendYaml('a', '10.0.0.1') + backendYaml('b', '10.0.0.2') + webVipYaml() + '  healthCheck: { type: TCP }\n' });
    await startReporting('lb-1', ['10.0.0.1']);
    await startReporting('lb-2', []);
    // One vote of two is no majority: 10.0.0.1 keeps its slots, both nodes expected.
    await until('two nodes expected', async () => (await vipStatus()).nodes?.expected === 2);
    await new Promise((r) => setTimeout(r, 1500));
    const both = (await publishedTable(cp, 'shop', 'web'))!;
    expect(both.table.backends.find((b) => b.key === '10.0.0.1')?.weight).toBe(100);

    // lb-2's agent goes silent (the node died with it).
    const silentAt = Date.now();
    clearInterval(beats.get('lb-2'));
    const alone = await until('10.0.0.1 out of the table by lb-1 alone', async () => {
      const t = await publishedTable(cp, 'shop', 'web');
      return t !== null && t.table.backends.find((b) => b.key === '10.0.0.1')?.weight === 0 ? t : null;
    });
    const took = Date.now() - silentAt;
    console.log(`silent node stopped counting after ${took} ms (report interval 1 s, stale after 3)`);
    expect(took).toBeGreaterThanOrEqual(2000);
    expect(alone.generation).toBeGreaterThan(both.generation);
    // The status follows once the rollout settles (no node programs here: at most ROLLOUT_SETTLE_MS later).
    await until('one node expected', async () => (await vipStatus()).nodes?.expected === 1);
  });

  it('deleting a Node removes its report; a stale report without a Node is removed too', async () => {
    await cp.kubectl(['delete', 'node', 'lb-2']);
    await until('lb-2 report removed', async () => {
      const r = await cp.kubectl(['-n', 'xdplb-system', 'get', 'nodereport', 'lb-2'], { allowFailure: true });
      return r.exitCode !== 0;
    });
    // A report with no Node at all (written once, then silent) goes once stale.
    await startReporting('lb-9', []);
    clearInterval(beats.get('lb-9'));
    await until('lb-9 report removed', async () => {
      const r = await cp.kubectl(['-n', 'xdplb-system', 'get', 'nodereport', 'lb-9'], { allowFailure: true });
      return r.exitCode !== 0;
    });
    // The fresh node's report stays.
    expect((await cp.kubectl(['-n', 'xdplb-system', 'get', 'nodereport', 'lb-1'])).exitCode).toBe(0);
  });

  it('a change the node programs at once is one status write, and Ready stays True through it', async () => {
    // lb-1 now programs what is published (as its agent would, within a poll) and finds both backends healthy.
    clearInterval(beats.get('lb-1'));
    let programmed: string[] = [];
    const write = (): Promise<void> =>
      kube.patchStatus(PLURALS.reports, 'xdplb-system', 'lb-1', {
        observedTime: new Date().toISOString(),
        reportIntervalSeconds: 1,
        programmed,
        vips: [],
        backends: ['10.0.0.1', '10.0.0.2'].map((address) => ({ address, checks: [{ check: 'tcp:80', healthy: true }], resolved: true })),
      });
    const follow = async (): Promise<void> => {
      const t = await publishedTable(cp, 'shop', 'web');
      programmed = t === null ? [] : [programmedEntry('shop/web', t.generation, t.digest)];
      await write();
    };
    beats.set('lb-1', setInterval(() => void follow().catch(() => undefined), 300));
    const ready = async (): Promise<{ generation: number; status: string; reason: string } | null> => {
      const v = JSON.parse((await cp.kubectl(['-n', 'shop', 'get', 'vip', 'web', '-o', 'json'])).stdout) as { status?: { table?: { generation: number }; conditions?: { type: string; status: string; reason: string }[] } };
      const c = v.status?.conditions ?? [];
      const programmedCond = c.find((x) => x.type === 'Programmed');
      return programmedCond?.status === 'True' ? { generation: v.status!.table!.generation, status: c.find((x) => x.type === 'Ready')!.status, reason: programmedCond.reason } : null;
    };
    const before = await until('Programmed on the one node', ready);
    expect(before.status).toBe('True');
    await new Promise((r) => setTimeout(r, 4000)); // whatever settled writes were due have landed

    // Every status write of the VIP from here on, as a watch sees it.
    const vips = kube.customInformer(PLURALS.vips, 'shop');
    const writes: { ready: string | undefined; generation: number | undefined }[] = [];
    vips.on('update', (o: Obj) => {
      const st = o.status as { table?: { generation: number }; conditions?: { type: string; status: string }[] } | undefined;
      writes.push({ ready: st?.conditions?.find((c) => c.type === 'Ready')?.status, generation: st?.table?.generation });
    });
    await vips.start();
    try {
      await cp.kubectl(['-n', 'shop', 'patch', 'backend', 'b', '--type=merge', '-p', JSON.stringify({ spec: { weight: 300 } })]);
      const after = await until('the new generation programmed', async () => {
        const r = await ready();
        return r !== null && r.generation > before.generation ? r : null;
      });
      expect(after.status).toBe('True');
      await new Promise((r) => setTimeout(r, 4000));
      // One write: the new table, programmed on its node, Ready all along.
      expect(writes).toEqual([{ ready: 'True', generation: after.generation }]);
    } finally {
      await vips.stop();
    }
  });
});
