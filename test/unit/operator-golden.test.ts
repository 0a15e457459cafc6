// operator-golden.test.ts: golden tests of the operator's decisions. Each
// test/golden/operator/<case>.yaml holds a world (VIPs, Backends,
// EndpointSlices, node reports, the table published before) and the VIP to
// decide; <case>.expected.json holds the decision: backends with their state,
// the table (size, generation, digest, slots per backend) and the status.
// UPDATE_GOLDEN=1 rewrites the expected files (review the diff before committing).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { tableDigest } from '../../src/core/digest.js';
import { buildTable, slotCounts } from '../../src/core/maglev.js';
import { decideVip, type NodeView, type VipObject, type VipWorld } from '../../src/core/vip-decision.js';

const dir = join(import.meta.dirname, '../golden/operator');

interface Case {
  now: string;
  vip: string;
  vips: Omit<VipObject, 'conditions'>[];
  backends?: VipWorld['backends'];
  endpointSlices?: VipWorld['endpointSlices'];
  published?: { generation: number; size: number; backends: { key: string; weight: number }[] };
  nodes: { node: string; programmed: 'self' | 'published' | null; unhealthy: string[] }[];
}

function decide(c: Case) {
  const vips: VipObject[] = c.vips.map((v) => ({ ...v, conditions: [] }));
  const vip = vips.find((v) => v.name === c.vip)!;
  const published = c.published === undefined ? null : { generation: c.published.generation, table: buildTable({ size: c.published.size, backends: c.published.backends }) };
  const world = (nodes: NodeView[]): VipWorld => ({
    vip,
    allVips: vips,
    backends: (c.backends ?? []).map((b) => ({ ...b, deleting: false })),
    endpointSlices: c.endpointSlices ?? [],
    nodes,
    published,
    now: new Date(c.now),
  });
  // "self": the node programmed the table this decision publishes.
  const first = decideVip(world(c.nodes.map((n) => ({ node: n.node, programmed: null, unhealthy: n.unhealthy }))));
  const nodes = c.nodes.map((n) => ({
    node: n.node,
    unhealthy: n.unhealthy,
    programmed:
      n.programmed === 'self' && first.digest !== null
        ? { generation: first.generation, digest: first.digest }
        : n.programmed === 'published' && published !== null
          ? { generation: published.generation, digest: tableDigest(published.table) }
          : null,
  }));
  const d = decideVip(world(nodes));
  const counts = d.table === null ? null : Object.fromEntries(d.table.backends.map((b, i) => [b.key, slotCounts(d.table!)[i]]));
  let moved: number | null = null;
  if (d.table !== null && published !== null && published.table.size === d.table.size) {
    moved = 0;
    for (let s = 0; s < d.table.size; s++) if (published.table.backends[published.table.slots[s]!]!.key !== d.table.backends[d.table.slots[s]!]!.key) moved++;
  }
  return { conflict: d.conflict, backends: d.backends, table: d.table === null ? null : { size: d.table.size, generation: d.generation, digest: d.digest, slots: counts, movedFromPublished: moved }, status: d.status };
}

describe('operator decisions (golden)', () => {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    it(file.replace('.yaml', ''), () => {
      const c = parse(readFileSync(join(dir, file), 'utf8')) as Case;
      const got = JSON.parse(JSON.stringify(decide(c))) as unknown;
      const expectedFile = join(dir, file.replace('.yaml', '.expected.json'));
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(expectedFile)) {
        if (process.env.CI !== undefined && process.env.UPDATE_GOLDEN !== '1') throw new Error(`${expectedFile} is missing; run UPDATE_GOLDEN=1 locally and review it`);
        writeFileSync(expectedFile, `${JSON.stringify(got, null, 2)}\n`);
      }
      expect(got).toEqual(JSON.parse(readFileSync(expectedFile, 'utf8')));
    });
  }
});
