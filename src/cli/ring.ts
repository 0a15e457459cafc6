// ring.ts: `xdplb ring`, compute a lookup table (or the minimal-disruption
// successor of a saved one) and report its balance, digest and cost.
import { z } from 'zod';
import type { BackendWeight } from '../core/backends.js';
import { tableDigest } from '../core/digest.js';
import { ErrorCodes, XdplbError, isXdplbError } from '../core/errors.js';
import { buildTable, imbalance, slotCounts, successorTable, tableChange, type Table } from '../core/maglev.js';
import { decodeTable, encodeTable } from '../core/table-codec.js';
import { DEFAULT_TABLE_SIZE, MIN_SLOTS_PER_BACKEND } from '../core/table-sizes.js';
import { parseFlags } from '../config/flags.js';
import { EXIT_USAGE, type CliIo } from './io.js';

export const RING_USAGE = `usage: xdplb ring [--size M] --backend KEY=WEIGHT [--backend ...] [--previous FILE] [--out FILE] [--json]

  --size M            table size, an allowed prime (default ${DEFAULT_TABLE_SIZE})
  --backend KEY=W     a backend's stable key and integer weight (0 drains it); repeat
  --previous FILE     a table saved with --out: compute its minimal-disruption successor
  --out FILE          save the table (JSON document with digest) for a later --previous
  --json              print one JSON object instead of the table view`;

const flagsSchema = z.object({
  size: z
    .string()
    .regex(/^\d+$/, { message: '--size must be a positive integer' })
    .transform(Number)
    .default(DEFAULT_TABLE_SIZE),
  backend: z.array(z.string()).min(1, { message: 'no backend given: use --backend KEY=WEIGHT' }),
  previous: z.string().optional(),
  out: z.string().optional(),
  json: z.boolean().default(false),
});

function parseBackend(spec: string): BackendWeight {
  const eq = spec.lastIndexOf('=');
  if (eq <= 0) throw new XdplbError(ErrorCodes.BAD_FLAG, `--backend "${spec}" is not KEY=WEIGHT`);
  const weightText = spec.slice(eq + 1);
  if (!/^\d+$/.test(weightText)) {
    throw new XdplbError(ErrorCodes.BAD_FLAG, `--backend "${spec}": weight must be a non-negative integer`);
  }
  return { key: spec.slice(0, eq), weight: Number(weightText) };
}

export interface RingReport {
  size: number;
  digest: string;
  backends: { key: string; weight: number; slots: number; share: number; idealShare: number }[];
  imbalance: number;
  buildMs: number;
  change: null | {
    moved: number;
    minimum: number;
    movedSlots: number;
    minimumSlots: number;
    /** What plain Maglev rebuilt from scratch would have moved, for comparison. */
    freshRebuildMoved: number;
  };
  warnings: string[];
}

function report(table: Table, buildMs: number, previous: Table | null): RingReport {
  const counts = slotCounts(table);
  const total = table.backends.reduce((a, b) => a + b.weight, 0);
  const warnings: string[] = [];
  const serving = table.backends.filter((b) => b.weight > 0).length;
  if (table.size < MIN_SLOTS_PER_BACKEND * serving) {
    warnings.push(
      `size ${table.size} gives fewer than ${MIN_SLOTS_PER_BACKEND} slots per backend (${serving} backends): balance and disruption degrade; use a larger size`,
    );
  }
  let change: RingReport['change'] = null;
  if (previous !== null) {
    const c = tableChange(previous, table);
    const fresh = tableChange(previous, buildTable({ size: table.size, backends: table.backends }));
    change = {
      moved: c.moved / table.size,
      minimum: c.minimum / table.size,
      movedSlots: c.moved,
      minimumSlots: c.minimum,
      freshRebuildMoved: fresh.moved / table.size,
    };
  }
  return {
    size: table.size,
    digest: tableDigest(table),
    backends: table.backends.map((b, i) => ({
      key: b.key,
      weight: b.weight,
      slots: counts[i]!,
      share: counts[i]! / table.size,
      idealShare: b.weight / total,
    })),
    imbalance: imbalance(table),
    buildMs,
    change,
    warnings,
  };
}

const pct = (x: number): string => `${(100 * x).toFixed(3)}%`;

function printHuman(io: CliIo, r: RingReport): void {
  io.out(`table size ${r.size}, ${r.backends.length} backends, built in ${r.buildMs.toFixed(2)} ms`);
  io.out(`digest ${r.digest}`);
  const keyWidth = Math.max(7, ...r.backends.map((b) => b.key.length));
  io.out(`${'BACKEND'.padEnd(keyWidth)}  ${'WEIGHT'.padStart(7)}  ${'SLOTS'.padStart(8)}  ${'SHARE'.padStart(9)}  ${'IDEAL'.padStart(9)}`);
  for (const b of r.backends) {
    io.out(
      `${b.key.padEnd(keyWidth)}  ${String(b.weight).padStart(7)}  ${String(b.slots).padStart(8)}  ${pct(b.share).padStart(9)}  ${pct(b.idealShare).padStart(9)}`,
    );
  }
  io.out(`imbalance ${r.imbalance.toFixed(5)} (largest share over its ideal share; 1 is perfect)`);
  if (r.change !== null) {
    const c = r.change;
    io.out(
      `change: ${pct(c.moved)} of slots moved (${c.movedSlots}), theoretical minimum ${pct(c.minimum)} (${c.minimumSlots}); ` +
        `a fresh Maglev rebuild would move ${pct(c.freshRebuildMoved)}`,
    );
  }
  for (const w of r.warnings) io.err(`warning: ${w}`);
}

export function runRing(argv: readonly string[], io: CliIo): number {
  try {
    const flags = parseFlags(
      argv,
      { size: { type: 'string' }, backend: { type: 'string', multiple: true }, previous: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } },
      flagsSchema,
      (v) => ({ ...v, backend: v.backend ?? [] }),
    );
    if (flags === null) {
      io.out(RING_USAGE);
      return 0;
    }
    const backends = flags.backend.map(parseBackend);

    let previous: Table | null = null;
    if (flags.previous !== undefined) {
      let text: string;
      try {
        text = io.readFile(flags.previous);
      } catch (e) {
        throw new XdplbError(ErrorCodes.IO, `cannot read --previous ${flags.previous}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch {
        throw new XdplbError(ErrorCodes.BAD_TABLE_FILE, `--previous ${flags.previous} is not JSON`);
      }
      previous = decodeTable(doc);
      if (previous.size !== flags.size) {
        throw new XdplbError(
          ErrorCodes.BAD_FLAG,
          `--previous ${flags.previous} has size ${previous.size} but --size is ${flags.size}: a size change keeps no slot, so build without --previous`,
        );
      }
    }

    const start = io.now();
    const table = previous === null ? buildTable({ size: flags.size, backends }) : successorTable(previous, { size: flags.size, backends });
    const buildMs = io.now() - start;

    if (flags.out !== undefined) {
      try {
        io.writeFile(flags.out, `${JSON.stringify(encodeTable(table))}\n`);
      } catch (e) {
        throw new XdplbError(ErrorCodes.IO, `cannot write --out ${flags.out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    const r = report(table, buildMs, previous);
    if (flags.json) io.out(JSON.stringify(r));
    else printHuman(io, r);
    return 0;
  } catch (e) {
    if (isXdplbError(e)) {
      io.err(`xdplb ring: ${e.message}`);
      return EXIT_USAGE;
    }
    throw e;
  }
}
