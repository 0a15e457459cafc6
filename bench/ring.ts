// ring.ts: `npm run bench:ring`. Times fresh Maglev tables and the
// minimal-disruption successor in TypeScript at 10..10000 backends, at
// M = 65537 and at M >= 100 x backends, beside a C build of the same fresh
// algorithm (bench/maglev.c, compiled -O2 in this run) whose table checksum
// must equal TypeScript's. Prints a table, or one JSON object with --json.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackendWeight } from '../src/core/backends.js';
import { buildTable, successorTable, tableChange, type Table } from '../src/core/maglev.js';
import { recommendedTableSize } from '../src/core/table-sizes.js';

const MIN_MS = 300;
const json = process.argv.includes('--json');
const root = join(import.meta.dirname, '../..');

function backends(n: number): BackendWeight[] {
  return Array.from({ length: n }, (_, i) => ({ key: `backend-${i}`, weight: 1 + (i % 4) }));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median wall time of fn over at least MIN_MS and 5 runs, after one warm-up. */
function time<T>(fn: () => T): { ms: number; result: T } {
  let result = fn();
  const samples: number[] = [];
  let spent = 0;
  while ((spent < MIN_MS || samples.length < 5) && samples.length < 1000) {
    const t0 = performance.now();
    result = fn();
    const dt = performance.now() - t0;
    samples.push(dt);
    spent += dt;
  }
  return { ms: median(samples), result };
}

function checksum(t: Table): number {
  let h = 0x811c9dc5;
  for (let s = 0; s < t.size; s++) {
    const v = t.slots[s]!;
    for (let k = 0; k < 4; k++) {
      h ^= (v >>> (8 * k)) & 0xff;
      h = Math.imul(h, 16777619);
    }
  }
  return h >>> 0;
}

interface Row {
  backends: number;
  size: number;
  freshTsMs: number;
  freshCMs: number;
  tsOverC: number;
  successorAddMs: number;
  successorRemoveMs: number;
  addMoved: number;
  addMinimum: number;
  addFreshRebuildMoved: number;
}

const dir = mkdtempSync(join(tmpdir(), 'xdplb-bench-'));
try {
  const cBin = join(dir, 'maglev');
  execFileSync('cc', ['-O2', '-o', cBin, join(root, 'bench/maglev.c')]);
  const rows: Row[] = [];
  for (const n of [10, 100, 1000, 10000]) {
    for (const size of [...new Set([65537, recommendedTableSize(n)])]) {
      const set = backends(n);
      const fresh = time(() => buildTable({ size, backends: set }));
      const c = JSON.parse(execFileSync(cBin, [String(n), String(size), String(MIN_MS)], { encoding: 'utf8' })) as {
        medianMs: number;
        checksum: number;
      };
      if (c.checksum !== checksum(fresh.result)) {
        throw new Error(`C and TypeScript tables differ at ${n} backends, size ${size}: the baseline is not the same algorithm`);
      }
      const added = [...set, { key: `backend-${n}`, weight: 1 }];
      const add = time(() => successorTable(fresh.result, { size, backends: added }));
      const remove = time(() => successorTable(fresh.result, { size, backends: set.slice(1) }));
      const addChange = tableChange(fresh.result, add.result);
      const rebuild = tableChange(fresh.result, buildTable({ size, backends: added }));
      rows.push({
        backends: n,
        size,
        freshTsMs: fresh.ms,
        freshCMs: c.medianMs,
        tsOverC: fresh.ms / c.medianMs,
        successorAddMs: add.ms,
        successorRemoveMs: remove.ms,
        addMoved: addChange.moved,
        addMinimum: addChange.minimum,
        addFreshRebuildMoved: rebuild.moved,
      });
    }
  }
  if (json) {
    console.log(JSON.stringify({ node: process.version, rows }));
  } else {
    console.log(`bench:ring (node ${process.version}; median of >= 5 runs and >= ${MIN_MS} ms; weights 1..4)`);
    console.log('backends     size   fresh TS   fresh C   TS/C   succ +1   succ -1   moved +1 / minimum / fresh rebuild');
    for (const r of rows) {
      console.log(
        `${String(r.backends).padStart(8)} ${String(r.size).padStart(8)} ${r.freshTsMs.toFixed(2).padStart(8)}ms ${r.freshCMs.toFixed(2).padStart(7)}ms ${r.tsOverC.toFixed(2).padStart(5)}x ${r.successorAddMs.toFixed(2).padStart(7)}ms ${r.successorRemoveMs.toFixed(2).padStart(7)}ms   ${r.addMoved} / ${r.addMinimum} / ${r.addFreshRebuildMoved} (${(r.addFreshRebuildMoved / r.addMinimum).toFixed(2)}x)`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
