// file-watch.test.ts: content changes are reported once each, including
// replace-by-rename and a missing file, on a real filesystem.
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileWatch } from '../../src/agent/file-watch.js';

const dir = mkdtempSync(join(tmpdir(), 'xdplb-watch-'));
let w: FileWatch | null = null;
afterEach(() => w?.stop());

describe('file watch', () => {
  it('reports the first content, each change once, replace-by-rename, and a missing file', async () => {
    const file = join(dir, 'agent.yaml');
    writeFileSync(file, 'a: 1\n');
    const seen: (string | null)[] = [];
    w = new FileWatch(file, { pollMs: 50, onChange: (c, e) => seen.push(c ?? `error:${e?.code}`) });
    await w.start();
    expect(seen).toEqual(['a: 1\n']);

    writeFileSync(file, 'a: 2\n');
    await expect.poll(() => seen.at(-1), { timeout: 2000, interval: 10 }).toBe('a: 2\n');
    writeFileSync(file, 'a: 2\n'); // same content: no callback
    writeFileSync(join(dir, 'tmp'), 'a: 3\n');
    renameSync(join(dir, 'tmp'), file);
    await expect.poll(() => seen.at(-1), { timeout: 2000, interval: 10 }).toBe('a: 3\n');
    unlinkSync(file);
    await expect.poll(() => seen.at(-1), { timeout: 2000, interval: 10 }).toBe('error:ENOENT');
    writeFileSync(file, 'a: 4\n');
    await expect.poll(() => seen.at(-1), { timeout: 2000, interval: 10 }).toBe('a: 4\n');
    expect(seen).toEqual(['a: 1\n', 'a: 2\n', 'a: 3\n', 'error:ENOENT', 'a: 4\n']);
    rmSync(dir, { recursive: true, force: true });
  });

  it('never reports a half-written (empty) file, only the settled content', async () => {
    const d = mkdtempSync(join(tmpdir(), 'xdplb-watch2-'));
    const file = join(d, 'agent.yaml');
    writeFileSync(file, 'a: 1\n');
    const seen: string[] = [];
    w = new FileWatch(file, { pollMs: 20, settleMs: 30, onChange: (c) => seen.push(c ?? 'error') });
    await w.start();
    writeFileSync(file, ''); // truncated, as a write in place does first
    await new Promise((r) => setTimeout(r, 150));
    writeFileSync(file, 'a: 2\n');
    await expect.poll(() => seen.at(-1), { timeout: 2000, interval: 10 }).toBe('a: 2\n');
    expect(seen).toEqual(['a: 1\n', 'a: 2\n']);
    rmSync(d, { recursive: true, force: true });
  });
});
