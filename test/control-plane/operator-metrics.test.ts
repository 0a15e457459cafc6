// operator-metrics.test.ts: `xdplb operator` as its Deployment runs it (the
// built CLI, a real kube-apiserver and etcd) serves Prometheus metrics on its
// health port: after it publishes a VIP's table, /metrics counts the
// reconciles, the table published, the API requests it made by verb and
// resource, and says it leads.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlane } from '../../lab/control-plane.js';
import { XDPLB } from '../../lab/root.js';
import { until } from '../../lab/wait.js';
import { backendYaml, publishedTable, startOperatorPlane, webVipYaml } from '../support/operator-plane.js';

let cp: ControlPlane;
let operator: ChildProcess;
const ADDRESS = '127.0.0.1:18081';

/** The sum of a metric's samples whose labels include `labels`, from the operator's /metrics. */
async function sample(name: string, labels: Record<string, string> = {}): Promise<number | null> {
  const text = await (await fetch(`http://${ADDRESS}/metrics`)).text();
  let sum: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

beforeAll(async () => {
  ({ cp } = await startOperatorPlane());
  operator = spawn(process.execPath, [XDPLB, 'operator', '--kubeconfig', cp.kubeconfigPath, '--namespace', 'xdplb-system', '--identity', 'metrics-test', '--lease-seconds', '5', '--health-address', ADDRESS], { stdio: 'ignore' });
}, 180_000);

afterAll(async () => {
  operator?.kill('SIGTERM');
  await cp?.stop();
});

describe('operator metrics', () => {
  it('counts reconciles, publications and API requests, and says it leads', async () => {
    await until('the operator leads', async () => (await sample('xdplb_operator_leader').catch(() => null)) === 1, 30_000);
    await cp.kubectl(['apply', '-f', '-'], { input: backendYaml('a', '10.0.0.1') + backendYaml('b', '10.0.0.2') + webVipYaml('web', 251) });
    await until('the published table', () => publishedTable(cp, 'shop', 'web'), 30_000);
    await until('one table counted', async () => (await sample('xdplb_operator_tables_published_total')) === 1, 10_000);
    expect(await sample('xdplb_operator_reconciles_total', { result: 'success' })).toBeGreaterThan(0);
    expect(await sample('xdplb_operator_reconcile_duration_seconds_count')).toBeGreaterThan(0);
    expect(await sample('xdplb_operator_workqueue_queue_duration_seconds_count')).toBeGreaterThan(0);
    expect(await sample('xdplb_operator_workqueue_depth')).not.toBeNull();
    // Exported from the start; nothing failed, so nothing was tried again.
    expect(await sample('xdplb_operator_table_writes_retried_total')).toBe(0);
    // One shard created for the one table, and the lease read and written.
    expect(await sample('xdplb_operator_api_request_duration_seconds_count', { verb: 'create', resource: 'viptables' })).toBe(1);
    expect(await sample('xdplb_operator_api_request_duration_seconds_count', { verb: 'patch', resource: 'loadbalancervips/status' })).toBeGreaterThan(0);
    expect(await sample('xdplb_operator_api_request_duration_seconds_count', { resource: 'leases' })).toBeGreaterThan(0);
    // The first campaign found no Lease (404) and created it: the one failed request, counted by its code.
    expect(await sample('xdplb_operator_api_request_errors_total', { verb: 'get', resource: 'leases', code: '404' })).toBe(1);
    expect(await sample('xdplb_operator_api_request_duration_seconds_count', { verb: 'create', resource: 'leases' })).toBe(1);
  });
});
