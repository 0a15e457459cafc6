// ring-cli.test.ts: `xdplb ring` end to end in-process (flags, files, JSON,
// exit codes), and once through the built executable.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { realIo, type CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/commands.js';
import type { RingReport } from '../../src/cli/ring.js';

const dir = mkdtempSync(join(tmpdir(), 'xdplb-ring-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { ...realIo, out: (l) => out.push(l), err: (l) => err.push(l) };
  const code = await main(['ring', ...argv], io);
  return { code, out, err };
}

const backends = (n: number, weight = 1) => Array.from({ length: n }, (_, i) => ['--backend', `10.0.0.${i}=${weight}`]).flat();

describe('xdplb ring', () => {
  it('prints a JSON report with the documented fields', async () => {
    const { code, out } = await run('--size', '65537', ...backends(10), '--json');
    expect(code).toBe(0);
    const r = JSON.parse(out[0]!) as RingReport;
    expect(r.size).toBe(65537);
    expect(r.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.backends).toHaveLength(10);
    expect(r.backends.reduce((a, b) => a + b.slots, 0)).toBe(65537);
    expect(r.imbalance).toBeGreaterThanOrEqual(1);
    expect(r.imbalance).toBeLessThan(1.001);
    expect(r.buildMs).toBeGreaterThan(0);
    expect(r.change).toBeNull();
  });

  it('with --previous computes the successor and reports moved against the minimum', async () => {
    const saved = join(dir, 'prev.json');
    expect((await run(...backends(100), '--out', saved)).code).toBe(0);
    const { code, out } = await run(...backends(101), '--previous', saved, '--json');
    expect(code).toBe(0);
    const r = JSON.parse(out[0]!) as RingReport;
    expect(r.change).not.toBeNull();
    expect(r.change!.moved).toBe(r.change!.minimum);
    expect(r.change!.minimum).toBeCloseTo(1 / 101, 3);
    expect(r.change!.freshRebuildMoved).toBeGreaterThan(1.3 * r.change!.minimum);
  });

  it('warns when the table is small for the backend count', async () => {
    const { code, err } = await run('--size', '251', ...backends(5));
    expect(code).toBe(0);
    expect(err.join('\n')).toMatch(/fewer than 100 slots per backend/);
  });

  it.each([
    [['--size', '65536', '--backend', 'a=1'], /not allowed/],
    [['--size', 'big', '--backend', 'a=1'], /--size must be a positive integer/],
    [['--backend', 'a=-1'], /weight must be a non-negative integer/],
    [['--backend', 'a=2.5'], /weight must be a non-negative integer/],
    [['--backend', 'a'], /is not KEY=WEIGHT/],
    [['--backend', 'a=1', '--backend', 'a=2'], /duplicate backend key "a"/],
    [[], /no backend given/],
    [['--backend', 'a=1', '--previous', '/nonexistent/x.json'], /cannot read --previous/],
    [['--backend', 'a=1', '--frobnicate'], /Unknown option/],
  ])('exits 2 with one line for %j', async (argv, message) => {
    const { code, err, out } = await run(...(argv as string[]));
    expect(code).toBe(2);
    expect(out).toEqual([]);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(message);
  });

  it('exits 2 on a corrupt or mismatched previous file', async () => {
    const saved = join(dir, 'corrupt.json');
    expect((await run('--size', '251', '--backend', 'a=1', '--backend', 'b=1', '--out', saved)).code).toBe(0);
    const doc = JSON.parse(readFileSync(saved, 'utf8'));
    writeFileSync(saved, JSON.stringify({ ...doc, backends: [{ key: 'a', weight: 1 }, { key: 'b', weight: 9 }] }));
    let r = await run('--size', '251', '--backend', 'a=1', '--previous', saved);
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/digest .* does not match/);
    writeFileSync(saved, '{not json');
    r = await run('--size', '251', '--backend', 'a=1', '--previous', saved);
    expect(r.code).toBe(2);
    r = await run('--size', '509', '--backend', 'a=1', '--previous', join(dir, 'prev.json'));
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/size 65537 but --size is 509/);
  });

  it('runs as the built executable', () => {
    const bin = join(import.meta.dirname, '../../dist/src/cli/main.js');
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run npm run build first (npm test does)`);
    const out = execFileSync(process.execPath, [bin, 'ring', '--backend', 'x=1', '--backend', 'y=3', '--json'], { encoding: 'utf8' });
    expect(JSON.parse(out).backends.map((b: { slots: number }) => b.slots)).toEqual([16384, 49153]);
    const bad = spawnSync(process.execPath, [bin, 'ring'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const unknown = spawnSync(process.execPath, [bin, 'teleport'], { encoding: 'utf8' });
    expect(unknown.status).toBe(2);
  });
});
