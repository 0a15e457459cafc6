// node-view.test.ts: how the operator reads one node's report for one VIP
// (api/to-core.ts nodeViewOf): backends failing the VIP's own check (per
// check, as agents report now), unresolved ones, and reports of agents from
// before checks (VIP lists) still read; a report of 1000 VIPs over 100
// backends stays far below the API server's request limit.
import { describe, expect, it } from 'vitest';
import { nodeViewOf, parseNodeReport, parseVip, vipCheckOf } from '../../src/api/index.js';
import type { Obj } from '../../src/kube/k8s.js';

function report(status: Record<string, unknown>): ReturnType<typeof parseNodeReport> & { ok: true } {
  const r = parseNodeReport({ apiVersion: 'xdplb.io/v1alpha1', kind: 'NodeReport', metadata: { name: 'lb-1', namespace: 'xdplb-system' }, spec: { node: 'lb-1' }, status } as Obj);
  if (!r.ok) throw new Error(r.problem);
  return r;
}

function vip(healthCheck?: Record<string, unknown>, ports: Record<string, unknown>[] = [{ port: 80 }]) {
  const v = parseVip({ apiVersion: 'xdplb.io/v1alpha1', kind: 'LoadBalancerVip', metadata: { name: 'web', namespace: 'shop' }, spec: { address: '192.0.2.10', ports, ...(healthCheck === undefined ? {} : { healthCheck }) } } as Obj);
  if (!v.ok) throw new Error(v.problem);
  return v.value;
}

describe('a node report as the operator reads it for one VIP', () => {
  it("names a VIP's check from its health check: type, port (its own, else the VIP's first) and HTTP path", () => {
    expect(vipCheckOf(vip())).toBeUndefined();
    expect(vipCheckOf(vip({ type: 'TCP' }))).toBe('tcp:80');
    expect(vipCheckOf(vip({ type: 'TCP', port: 9000 }, [{ port: 443 }]))).toBe('tcp:9000');
    expect(vipCheckOf(vip({ type: 'HTTP', port: 8080, path: '/healthz' }))).toBe('http:8080/healthz');
  });

  it("counts a backend failing the VIP's own check, or unresolved; another VIP's check failing is not this VIP's", () => {
    const r = report({
      vips: [{ namespace: 'shop', name: 'web', generation: 3, digest: 'sha256:x', programmed: true }],
      backends: [
        { address: '10.0.0.1', checks: [{ check: 'tcp:80', healthy: false }, { check: 'http:8080/healthz', healthy: true }], resolved: true },
        { address: '10.0.0.2', checks: [{ check: 'tcp:80', healthy: true }, { check: 'http:8080/healthz', healthy: false }], resolved: true },
        { address: '10.0.0.3', resolved: false },
      ],
    });
    const tcp = nodeViewOf(r.value, { namespace: 'shop', name: 'web', check: 'tcp:80' });
    expect([...tcp.unhealthy].sort()).toEqual(['10.0.0.1', '10.0.0.3']);
    expect(tcp.programmed).toEqual({ generation: 3, digest: 'sha256:x' });
    expect([...nodeViewOf(r.value, { namespace: 'shop', name: 'web', check: 'http:8080/healthz' }).unhealthy].sort()).toEqual(['10.0.0.2', '10.0.0.3']);
    expect(nodeViewOf(r.value, { namespace: 'shop', name: 'web', check: undefined }).unhealthy).toEqual(['10.0.0.3']);
    expect(nodeViewOf(r.value, { namespace: 'shop', name: 'other', check: 'tcp:80' }).programmed).toBeNull();
  });

  it('still reads a report written by an agent before checks (VIP lists with one healthy flag)', () => {
    const r = report({ backends: [{ address: '10.0.0.1', vips: ['shop/web'], healthy: false, resolved: true }, { address: '10.0.0.2', vips: ['shop/db'], healthy: false, resolved: true }] });
    expect(nodeViewOf(r.value, { namespace: 'shop', name: 'web', check: 'tcp:80' }).unhealthy).toEqual(['10.0.0.1']);
  });

  it('a report of 1000 VIPs over 100 backends is a few hundred KiB, not the megabytes of VIP lists', () => {
    const vips = Array.from({ length: 1000 }, (_, i) => ({ namespace: 'bench', name: `vip-${i}`, generation: 12, digest: `sha256:${'0'.repeat(64)}`, programmed: true, state: 'Programmed', message: 'programmed' }));
    const backends = Array.from({ length: 100 }, (_, b) => ({ address: `10.0.${b >> 8}.${b & 255}`, checks: [{ check: 'tcp:80', healthy: true }], resolved: true, reason: '' }));
    const now = JSON.stringify({ vips, backends }).length;
    const before = JSON.stringify({ vips, backends: backends.map((b) => ({ ...b, vips: vips.map((v) => `${v.namespace}/${v.name}`) })) }).length;
    expect(now).toBeLessThan(512 * 1024);
    expect(before).toBeGreaterThan(1.5 * 1024 * 1024); // over etcd's default request limit
    expect(report({ vips, backends }).value.status.vips).toHaveLength(1000);
  });
});
