// reports-measure.test.ts: what nodes report is measured, not repeated:
// the programmed digest is computed from what the kernel holds (slots and
// backend addresses read back), an attach mode iproute2 names that xdplb does
// not know is "unknown", and a node whose report stops changing stops counting
// (its report goes stale by the operator's clock).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { modeOfAttachment } from '../../src/agent/lifecycle.js';
import { programmedDigest, tableDigest } from '../../src/core/digest.js';
import { buildTable } from '../../src/core/maglev.js';
import { EMPTY_TABLE } from '../../src/core/vip-decision.js';
import type { Obj } from '../../src/kube/k8s.js';
import { NodeLiveness } from '../../src/operator/node-liveness.js';

describe('reports say what was measured (issue 11 items 6 and 9)', () => {
  const table = buildTable({ size: 251, backends: [{ key: '10.0.0.1', weight: 1 }, { key: '10.0.0.2', weight: 3 }] });
  // The kernel's view: datapath backend indices (not the table's owner positions) and their addresses.
  const indexOf = new Map([['10.0.0.1', 7], ['10.0.0.2', 3]]);
  const kernelSlots = Uint32Array.from(table.slots, (o) => indexOf.get(table.backends[o]!.key)!);
  const addressOf = (i: number) => [...indexOf].find(([, j]) => j === i)?.[0];

  it('the digest of what the kernel holds equals the published digest exactly when every slot agrees', () => {
    expect(programmedDigest(251, kernelSlots, addressOf, table.backends)).toBe(tableDigest(table));
    const off = kernelSlots.slice();
    off[17] = off[17] === 7 ? 3 : 7;
    expect(programmedDigest(251, off, addressOf, table.backends)).not.toBe(tableDigest(table));
    // A slot naming a backend the published table does not list.
    const stray = kernelSlots.slice();
    stray[0] = 99;
    expect(programmedDigest(251, stray, (i) => (i === 99 ? '10.9.9.9' : addressOf(i)), table.backends)).not.toBe(tableDigest(table));
    // No table in the kernel is the empty table's digest, never the published one.
    expect(programmedDigest(0, null, addressOf, table.backends)).toBe(tableDigest(EMPTY_TABLE));
  });

  it('an XDP attach mode xdplb does not know is reported as unknown, not native', () => {
    expect(modeOfAttachment(1)).toBe('native');
    expect(modeOfAttachment(2)).toBe('generic');
    expect(modeOfAttachment(3)).toBe('offload');
    expect(modeOfAttachment(4)).toBe('unknown');
    expect(modeOfAttachment(0)).toBeNull();
    expect(modeOfAttachment(undefined)).toBeNull();
  });

  it('a report that stops changing goes stale after three of its intervals, and counts again when it changes', () => {
    let now = 0;
    let changes = 0;
    const live = new NodeLiveness({ now: () => now, changed: () => changes++, log: pino({ level: 'silent' }) });
    const report = (name: string, version: string, status: Record<string, unknown>): Obj => ({ metadata: { name, resourceVersion: version }, status: { reportIntervalSeconds: 1, ...status } });
    live.observe(report('lb-1', '1', { observedTime: 'a', vips: [] }));
    live.observe(report('lb-2', '2', { observedTime: 'a', vips: [] }));
    expect(changes).toBe(2);
    // Heartbeats (only observedTime changes) keep lb-1 fresh without re-queueing anything.
    for (now = 1000; now <= 5000; now += 1000) live.observe(report('lb-1', `1-${now}`, { observedTime: String(now), vips: [] }));
    expect(changes).toBe(2);
    now = 5000;
    expect(live.sweep()).toEqual(['lb-2']);
    expect(changes).toBe(3);
    expect(live.fresh('lb-1')).toBe(true);
    expect(live.fresh('lb-2')).toBe(false);
    expect(live.sweep()).toEqual([]);
    live.observe(report('lb-2', '9', { observedTime: 'b', vips: [] }));
    expect(live.fresh('lb-2')).toBe(true);
    expect(changes).toBe(4);
    live.forget('lb-2');
    expect(live.fresh('lb-2')).toBe(false);
  });

  it('a report\'s content changing re-queues only the VIPs whose part changed, or whose backend changed', () => {
    const queued: unknown[] = [];
    const live = new NodeLiveness({ now: () => 0, changed: (v) => queued.push(v === 'all' ? 'all' : { vips: [...v.vips].sort(), addresses: [...v.addresses].sort() }), log: pino({ level: 'silent' }) });
    const vip = (name: string, digest: string) => ({ namespace: 'shop', name, programmed: true, digest });
    const backend = (address: string, healthy: boolean) => ({ address, checks: [{ check: 'tcp:80', healthy }], resolved: true });
    const report = (version: string, status: Record<string, unknown>): Obj => ({ metadata: { name: 'lb-1', resourceVersion: version }, status: { reportIntervalSeconds: 1, xdpMode: 'native', ...status } });
    const base = { vips: [vip('a', 'd1'), vip('b', 'd1'), vip('c', 'd1')], backends: [backend('10.0.0.1', true), backend('10.0.0.2', true)], programmedSummary: '3/3' };
    live.observe(report('1', base));
    // b's digest changes: b alone.
    live.observe(report('2', { ...base, vips: [vip('a', 'd1'), vip('b', 'd2'), vip('c', 'd1')], programmedSummary: '3/3' }));
    // 10.0.0.1 fails: the VIPs with that backend (the operator knows which).
    live.observe(report('3', { ...base, vips: [vip('a', 'd1'), vip('b', 'd2'), vip('c', 'd1')], backends: [backend('10.0.0.1', false), backend('10.0.0.2', true)] }));
    // c is gone from the report, and 10.0.0.2 with it.
    live.observe(report('4', { vips: [vip('a', 'd1'), vip('b', 'd2')], backends: [backend('10.0.0.1', false)] }));
    // An agent from before checks lists the VIPs a backend serves: those too.
    live.observe(report('5', { vips: [vip('a', 'd1'), vip('b', 'd2')], backends: [{ address: '10.0.0.1', vips: ['shop/a'], healthy: false, resolved: true }] }));
    // The agent now writes short entries: a moves from vips to programmed, b is programmed anew.
    live.observe(report('6', { programmed: ['shop/a@1:d1', 'shop/b@2:d2'], vips: [vip('b', 'd2')], backends: [{ address: '10.0.0.1', vips: ['shop/a'], healthy: false, resolved: true }] }));
    // b's entry changes generation: b alone; a dropping out of both lists: a.
    live.observe(report('7', { programmed: ['shop/b@3:d3'], vips: [vip('b', 'd2')], backends: [{ address: '10.0.0.1', vips: ['shop/a'], healthy: false, resolved: true }] }));
    // The XDP mode changes: every VIP.
    live.observe(report('8', { vips: [vip('a', 'd1'), vip('b', 'd2')], backends: [], xdpMode: 'generic' }));
    expect(queued).toEqual([
      'all',
      { vips: ['shop/b'], addresses: [] },
      { vips: [], addresses: ['10.0.0.1'] },
      { vips: ['shop/c'], addresses: ['10.0.0.2'] },
      { vips: ['shop/a'], addresses: ['10.0.0.1'] },
      { vips: ['shop/a', 'shop/b'], addresses: [] },
      { vips: ['shop/a', 'shop/b'], addresses: [] },
      'all',
    ]);
  });
});
