// demo.test.ts: `xdplb demo` as a user runs it (the README's main job), short
// and with --json: the whole system comes up, the failover and the scale-out
// are measured, the report is written, and nothing is left behind.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DemoSummary } from '../../lab/demo/model.js';
import { XDPLB } from '../../lab/root.js';

const namespaces = (): string[] => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes('-demo-'));

describe('xdplb demo', () => {
  it('rejects a wrong flag with one line and exit 2', () => {
    const r = spawnSync(process.execPath, [XDPLB, 'demo', '--duration', '5'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('xdplb demo: --duration must be at least 20 seconds');
    const m = spawnSync(process.execPath, [XDPLB, 'demo', '--mode', 'gre'], { encoding: 'utf8' });
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/--mode/);
  });

  it('runs the whole system, measures failover and scale-out, writes the report, cleans up', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdplb-demo-test-'));
    try {
      const report = join(dir, 'report.html');
      const r = spawnSync(process.execPath, [XDPLB, 'demo', '--duration', '25', '--json', '--report', report], { encoding: 'utf8', timeout: 600_000 });
      expect(r.status, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout) as DemoSummary;
      console.log(`[demo] mode ${s.vip.mode}: failoverMs ${JSON.stringify(s.failoverMs)}, failed during failover ${s.failedDuringFailover}, moved ${s.moved} vs minimum ${s.minimum}, broken ${s.broken} (${s.flowsMeasured} flows), requests ${JSON.stringify(s.requests)}`);
      expect(s.complete).toBe(true);
      expect(Object.keys(s.failoverMs).sort()).toEqual(['lb1', 'lb2']);
      for (const ms of Object.values(s.failoverMs)) expect(ms).toBeGreaterThan(0);
      expect(s.flowsMeasured).toBe(400);
      expect(s.minimum).toBeCloseTo(0.2, 3);
      expect(s.movedSlots).toBeCloseTo(s.minimum!, 6);
      // Established flows moved: the minimum, within 5 standard deviations of 400 draws.
      expect(Math.abs(s.moved! - s.minimum!)).toBeLessThanOrEqual(5 * Math.sqrt((0.2 * 0.8) / 400));
      // The default mode is gue: second chance keeps every one of them.
      expect(s.vip.mode).toBe('gue');
      expect(s.broken).toBe(0);
      expect(s.requests.ok).toBeGreaterThan(1500);
      // The only failures: connections sent to the killed backend before the maps changed.
      expect(s.requests.failed).toBe(s.failedDuringFailover);
      expect(Object.keys(s.distribution)).toEqual(['be1', 'be2', 'be3', 'be4', 'be5']);
      const html = readFileSync(report, 'utf8');
      expect(html).toContain('<svg');
      expect(html).toContain('killed the HTTP server of be2');
      expect(namespaces()).toEqual([]);
      expect(readdirSync('/run/xdplb-test').filter((d) => d.endsWith('-demo'))).toEqual([]);
      expect(readdirSync(tmpdir()).some((d) => d.startsWith(`xdplb-cp-${r.pid}-`))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(existsSync(dir)).toBe(false);
  });
});
