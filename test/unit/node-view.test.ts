// node-view.test.ts: how the operator reads one node's report for one VIP
// (api/to-core.ts nodeViewOf): backends failing the VIP's own check (per
// check, as agents report now), unresolved ones, and reports of agents from
// before checks (VIP lists) still read; programmed VIPs as one short string
// each (and the full entries of older agents still read); a report of 1000
// VIPs over 100 backends stays small.
import { describe, expect, it } from 'vitest';
import { nodeViewOf, parseNodeReport, parseProgrammedEntry, parseVip, programmedEntry, vipCheckOf } from '../../src/api/index.js';
import { reportsDigest } from '../../src/core/digest.js';
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

  it('reads a programmed VIP from its short entry, and the full entry of an older agent', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const entry = programmedEntry('shop/web', 7, digest);
    expect(entry).toBe(`shop/web@7:${'ab'.repeat(8)}`);
    expect(parseProgrammedEntry(entry)).toEqual({ key: 'shop/web', generation: 7, digest: 'ab'.repeat(8) });
    for (const bad of ['shop/web', 'shop/web@x:ab', '@7:ab', 'shop/web@7:']) expect(parseProgrammedEntry(bad)).toBeNull();
    const view = nodeViewOf(report({ programmed: [entry, 'garbage'], vips: [{ namespace: 'shop', name: 'db', state: 'Pending', message: 'programming' }] }).value, { namespace: 'shop', name: 'web' });
    expect(view.programmed).toEqual({ generation: 7, digest: 'ab'.repeat(8) });
    expect(reportsDigest(view.programmed!.digest, digest)).toBe(true);
    expect(reportsDigest(view.programmed!.digest, `sha256:${'cd'.repeat(32)}`)).toBe(false);
    expect(nodeViewOf(report({ programmed: [entry] }).value, { namespace: 'shop', name: 'db' }).programmed).toBeNull();
  });

  it('a report of 1000 programmed VIPs over 100 backends is a few tens of KiB, under a third of full VIP entries', () => {
    const digest = `sha256:${'0'.repeat(64)}`;
    const full = Array.from({ length: 1000 }, (_, i) => ({ namespace: 'bench', name: `vip-${i}`, generation: 12, digest, programmed: true, state: 'Programmed', message: 'programmed' }));
    const programmed = full.map((v) => programmedEntry(`${v.namespace}/${v.name}`, v.generation, v.digest));
    const backends = Array.from({ length: 100 }, (_, b) => ({ address: `10.0.${b >> 8}.${b & 255}`, checks: [{ check: 'tcp:80', healthy: true }], resolved: true, reason: '' }));
    const now = JSON.stringify({ programmed, backends }).length;
    const fullEntries = JSON.stringify({ vips: full, backends }).length;
    expect(now).toBeLessThan(48 * 1024);
    expect(now * 3).toBeLessThan(fullEntries);
    expect(report({ programmed, backends }).value.status.programmed).toHaveLength(1000);
  });
});
