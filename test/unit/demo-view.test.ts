// demo-view.test.ts: the pure parts of `xdplb demo`: traffic arithmetic, the
// terminal view and the HTML report, from hand-made measurements.
import { describe, expect, it } from 'vitest';
import { expectedShares, flowsBetween, rateOver, sampleAt, timeline, type BackendInfo, type DemoSummary, type TrafficSample } from '../../lab/demo/model.js';
import { renderReport } from '../../lab/demo/report.js';
import { renderView } from '../../lab/demo/view.js';

const samples: TrafficSample[] = [
  { t: 0.25, ok: 25, failed: 0, byBackend: { be1: 10, be2: 15 } },
  { t: 1.25, ok: 125, failed: 2, byBackend: { be1: 50, be2: 75 } },
  { t: 2.25, ok: 225, failed: 2, byBackend: { be1: 100, be2: 125 } },
];
const backends: BackendInfo[] = [
  { name: 'be1', address: '10.50.0.11', weight: 100, state: 'serving' },
  { name: 'be2', address: '10.50.0.12', weight: 300, state: 'serving' },
  { name: 'be3', address: '10.50.0.13', weight: 100, state: 'killed' },
];

describe('demo model', () => {
  it('computes flows, rates and shares from running totals', () => {
    expect(sampleAt(samples, 1.3)).toBe(samples[1]);
    expect(sampleAt(samples, 0.1)).toBeUndefined();
    expect(flowsBetween(samples[1], samples[2]!)).toEqual({ be1: 50, be2: 50 });
    expect(flowsBetween(undefined, samples[0]!)).toEqual({ be1: 10, be2: 15 });
    expect(rateOver(samples, 1)).toEqual({ ok: 100, failed: 0 });
    expect(rateOver([], 1)).toEqual({ ok: 0, failed: 0 });
    expect(expectedShares(backends)).toEqual({ be1: 0.25, be2: 0.75, be3: 0 });
    const tl = timeline(samples, 0.5);
    expect(tl.map((p) => p.t)).toEqual([1.25, 2.25]);
    expect(tl[1]).toEqual({ t: 2.25, ok: 100, failed: 0 });
  });
});

describe('demo view', () => {
  it('shows bars, rates, node tables and the newest events', () => {
    const screen = renderView({
      vip: { name: 'web', address: '10.60.0.10', port: 80, mode: 'ipip' },
      t: 2.3,
      duration: 60,
      backends,
      samples,
      nodes: { lb1: { digest: 'sha256:0123456789abcdef', serving: 2, generation: 3 }, lb2: { digest: 'sha256:0123456789abcdef', serving: 2, generation: 3 } },
      events: Array.from({ length: 12 }, (_, i) => ({ t: i, kind: 'info' as const, text: `event ${i}` })),
      width: 100,
      color: false,
    });
    expect(screen).toContain('VIP web 10.60.0.10:80 (ipip)');
    expect(screen).toMatch(/new connections\/s\s+100 ok\s+1 failed/);
    expect(screen).toMatch(/be1 .*44\.4%/); // 100 of 225 flows in the last 5 s
    expect(screen).toMatch(/be3 .* killed/);
    expect(screen).toContain('= same table');
    expect(screen).not.toContain('event 1\n');
    expect(screen).toContain('event 11');
    expect(screen).not.toContain('\x1b[');
  });
});

describe('demo report', () => {
  it('is one self-contained page with both charts, escaped text', () => {
    const summary: DemoSummary = {
      vip: { name: 'web', address: '10.60.0.10', port: 80, mode: 'ipip', tableSize: 65537 },
      nodes: ['lb1', 'lb2'],
      durationSeconds: 25,
      failoverMs: { lb1: 290, lb2: null },
      failedDuringFailover: 3,
      moved: 0.21,
      broken: 0,
      minimum: 0.2,
      movedSlots: 0.2,
      flowsMeasured: 400,
      requests: { ok: 225, failed: 2 },
      distribution: { be1: { address: '10.50.0.11', weight: 100, flows: 100, share: 0.44, expected: 0.25 } },
      events: [{ t: 1, kind: 'kill', text: 'killed <be3>' }],
      report: null,
      complete: true,
    };
    const html = renderReport(summary, samples);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.match(/<svg/g)).toHaveLength(2);
    expect(html).toContain('lb1: 290 ms, lb2: n/a');
    expect(html).toContain('0 of 400 (21.0% of them on slots that moved; table slots moved 20.0%, theoretical minimum 20.0%)');
    expect(html).toContain('killed &lt;be3&gt;');
    expect(html).not.toMatch(/<script|https?:\/\//);
  });
});
