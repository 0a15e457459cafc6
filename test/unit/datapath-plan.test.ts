// datapath-plan.test.ts: the planner's ops, replayed one at a time, never let a
// packet see a VIP without its table or a table slot without its backend; the
// result equals the desired state; planning again is a no-op; identities stay.
// The image holds no slots (they are the kernel's): `Slots` here plays the
// kernel, holding what each putTable's content wrote.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildTable } from '../../src/core/maglev.js';
import {
  applyPlan,
  downOps,
  EMPTY_IMAGE,
  planDatapath,
  type BackendImage,
  tableSlotsOf,
  type DatapathImage,
  type DesiredDatapath,
  type DesiredVip,
  type PlanOp,
  type TableSlots,
  type VipFeatures,
} from '../../src/core/datapath-plan.js';
import { desiredTable } from '../../src/core/desired-state.js';

/** Outer slot -> the slots written there: the kernel's side of the tables. */
type Slots = Map<number, TableSlots>;

/** Applies ops to the image, and their table writes to `slots`. */
function run(image: DatapathImage, ops: readonly PlanOp[], slots: Slots): DatapathImage {
  for (const op of ops) {
    if (op.op === 'putTable') slots.set(op.slot, tableSlotsOf(op));
    if (op.op === 'deleteTable') slots.delete(op.slot);
  }
  return applyPlan(image, ops);
}

const caps = { maxBackends: 64, maxVips: 16, maxTables: 32 };

/** The VIP features a spec's `flags` index picks. */
const FEATURES: readonly VipFeatures[] = [
  { mode: 'ipip', affinity: 'fiveTuple', flowTable: false },
  { mode: 'ipip', affinity: 'sourceIp', flowTable: false },
  { mode: 'l2dsr', affinity: 'fiveTuple', flowTable: true },
];

interface VipSpec {
  name: string;
  address: string;
  ports: number[];
  size: 251 | 509;
  flags: number;
  backends: string[];
}

function desiredOf(specs: VipSpec[], macs: Record<string, string | null>): DesiredDatapath {
  const backends = new Map<string, BackendImage>();
  const vips: DesiredVip[] = specs.map((s) => {
    for (const b of s.backends) backends.set(b, { address: b, family: 4, mac: macs[b] ?? '02:00:00:00:00:01' });
    const t = s.backends.length === 0 ? null : buildTable({ size: s.size, backends: s.backends.map((key) => ({ key, weight: 1 })) });
    return {
      name: s.name,
      keys: s.ports.map((port) => ({ address: s.address, port, protocol: 'TCP' as const })),
      features: FEATURES[s.flags]!,
      table: t === null ? null : desiredTable(t),
    };
  });
  return { vips, backends };
}

/** Every VIP and fragment owner points at an existing table of its size whose indices all exist. */
function expectConsistent(image: DatapathImage, slots: Slots): void {
  for (const v of [...image.vips, ...image.fragVips]) {
    if (v.meta.tableSize === 0) continue;
    const table = image.tables.get(v.meta.tableSlot);
    expect(table, `VIP ${v.key.address}:${v.key.port} table slot ${v.meta.tableSlot}`).toBeDefined();
    expect(table!.size).toBe(v.meta.tableSize);
    const held = slots.get(v.meta.tableSlot)!;
    expect(held.slots.length).toBe(v.meta.tableSize);
    for (const i of new Set(held.slots)) expect(image.backends.has(i), `backend index ${i}`).toBe(true);
  }
}

function expectMatches(image: DatapathImage, desired: DesiredDatapath, slots: Slots): void {
  const wantedKeys = desired.vips.flatMap((v) => v.keys.map((k) => `${k.address}|${k.port}`)).sort();
  expect(image.vips.map((v) => `${v.key.address}|${v.key.port}`).sort()).toEqual(wantedKeys);
  for (const vip of desired.vips) {
    for (const key of vip.keys) {
      const entry = image.vips.find((v) => v.key.address === key.address && v.key.port === key.port)!;
      expect(entry.meta.features).toEqual(vip.features);
      // The fragment owner of this address is its VIP entry with the lowest port.
      const lowest = image.vips.filter((v) => v.key.address === key.address).sort((a, b) => a.key.port - b.key.port)[0]!;
      expect(image.fragVips.find((f) => f.key.address === key.address)?.meta).toEqual(lowest.meta);
      if (vip.table === null) {
        expect(entry.meta.tableSize).toBe(0);
        continue;
      }
      const table = slots.get(entry.meta.tableSlot)!.slots;
      const wanted = vip.table.content().slots;
      for (let s = 0; s < vip.table.size; s++) {
        expect(image.backends.get(table[s]!)!.address).toBe(vip.table.owners[wanted[s]!]);
      }
    }
  }
  expect(image.backends.size).toBe(desired.backends.size);
  expect(image.tables.size).toBe(desired.vips.filter((v) => v.table !== null).length);
  expect(slots.size).toBe(image.tables.size);
  expect(image.fragVips.length).toBe(new Set(desired.vips.flatMap((v) => v.keys.map((k) => k.address))).size);
}

const addressArb = fc.constantFrom('192.0.2.1', '192.0.2.2', '192.0.2.3', '198.51.100.7');
const backendArb = fc.constantFrom(...Array.from({ length: 12 }, (_, i) => `10.0.0.${i + 1}`));
const specsArb = fc
  .uniqueArray(
    fc.record({
      name: fc.constantFrom('a', 'b', 'c', 'd'),
      address: addressArb,
      ports: fc.uniqueArray(fc.constantFrom(0, 80, 443), { minLength: 1, maxLength: 2 }),
      size: fc.constantFrom(251 as const, 509 as const),
      flags: fc.constantFrom(0, 1, 2),
      backends: fc.uniqueArray(backendArb, { minLength: 0, maxLength: 5 }),
    }),
    { maxLength: 3, selector: (s) => s.name },
  )
  // Keys are unique across VIPs, as the config and the operator guarantee.
  .filter((specs) => new Set(specs.flatMap((s) => s.ports.map((p) => `${s.address}|${p}`))).size === specs.flatMap((s) => s.ports).length);
const macsArb = fc.dictionary(backendArb, fc.constantFrom('02:00:00:00:00:01', '02:00:00:00:00:02', null));

describe('datapath plan', () => {
  it('is safe at every step, reaches the desired state, and is idempotent', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(specsArb, macsArb), { minLength: 1, maxLength: 5 }), (history) => {
        let image: DatapathImage = EMPTY_IMAGE;
        const slots: Slots = new Map();
        for (const [specs, macs] of history) {
          const desired = desiredOf(specs, macs);
          const plan = planDatapath(image, desired, caps);
          for (const op of plan.ops) {
            image = run(image, [op], slots);
            expectConsistent(image, slots);
          }
          expectMatches(image, desired, slots);
          expect(planDatapath(image, desired, caps).ops).toEqual([]);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('keeps backend indices, VIP ids and table slots across changes', () => {
    const first = desiredOf([{ name: 'a', address: '192.0.2.1', ports: [80], size: 251, flags: 0, backends: ['10.0.0.1', '10.0.0.2', '10.0.0.3'] }], {});
    const p1 = planDatapath(EMPTY_IMAGE, first, caps);
    const image = applyPlan(EMPTY_IMAGE, p1.ops);
    const second = desiredOf([{ name: 'a', address: '192.0.2.1', ports: [80], size: 251, flags: 0, backends: ['10.0.0.1', '10.0.0.3', '10.0.0.4'] }], {});
    const p2 = planDatapath(image, second, caps);
    expect(p2.backendIndex.get('10.0.0.1')).toBe(p1.backendIndex.get('10.0.0.1'));
    expect(p2.backendIndex.get('10.0.0.3')).toBe(p1.backendIndex.get('10.0.0.3'));
    // The freed index of 10.0.0.2 is not reused in the pass that frees it.
    expect(p2.backendIndex.get('10.0.0.4')).not.toBe(p1.backendIndex.get('10.0.0.2'));
    expect(p2.vipIds.get('a')).toEqual(p1.vipIds.get('a'));
    expect(p2.ops.map((o) => o.op)).toEqual(['putBackend', 'putTable', 'clearBackend']);
    expect(p1.ops.map((o) => o.op)).toEqual(['putBackend', 'putBackend', 'putBackend', 'resetVipStats', 'putTable', 'putVip', 'putFragVip']);
  });

  it('marks a backend down before any table, and clears it only once the tables no longer need it', () => {
    const spec = (backends: string[]): VipSpec => ({ name: 'a', address: '192.0.2.1', ports: [80], size: 251, flags: 0, backends });
    const three = desiredOf([spec(['10.0.0.1', '10.0.0.2', '10.0.0.3'])], {});
    const p1 = planDatapath(EMPTY_IMAGE, three, caps);
    const image = applyPlan(EMPTY_IMAGE, p1.ops);
    const victim = p1.backendIndex.get('10.0.0.2')!;
    // Found dead: one write, the same as the fast path's.
    const dead = planDatapath(image, { ...three, down: new Set(['10.0.0.2']) }, caps);
    expect(dead.ops).toEqual([{ op: 'setBackendDown', index: victim, down: true }]);
    expect(downOps(image, new Set(['10.0.0.2']))).toEqual({ set: dead.ops, clear: [] });
    const down = applyPlan(image, dead.ops);
    // The successor without it: the new table first, then its down state cleared, then its entry.
    const successor = planDatapath(down, desiredOf([spec(['10.0.0.1', '10.0.0.3'])], {}), caps);
    expect(successor.ops.map((o) => o.op)).toEqual(['putTable', 'setBackendDown', 'clearBackend']);
    expect(successor.ops[1]).toEqual({ op: 'setBackendDown', index: victim, down: false });
    // Back up while still in the tables: cleared by the plan, never by the fast path.
    expect(downOps(down, new Set()).set).toEqual([]);
    expect(planDatapath(down, three, caps).ops).toEqual([{ op: 'setBackendDown', index: victim, down: false }]);
  });

  it('a size change goes through a fresh table slot, then the VIP, then frees the old slot', () => {
    const small = desiredOf([{ name: 'a', address: '192.0.2.1', ports: [80], size: 251, flags: 0, backends: ['10.0.0.1'] }], {});
    const image = applyPlan(EMPTY_IMAGE, planDatapath(EMPTY_IMAGE, small, caps).ops);
    const big = desiredOf([{ name: 'a', address: '192.0.2.1', ports: [80], size: 509, flags: 0, backends: ['10.0.0.1'] }], {});
    const plan = planDatapath(image, big, caps);
    expect(plan.ops.map((o) => o.op)).toEqual(['putTable', 'putVip', 'putFragVip', 'deleteTable']);
    const put = plan.ops[0] as { slot: number };
    const del = plan.ops[3] as { slot: number };
    expect(put.slot).not.toBe(del.slot);
  });

  it('refuses a VIP that does not fit and plans the rest (issue 11 item 12)', () => {
    const many = desiredOf(
      [
        { name: 'a', address: '192.0.2.1', ports: [80], size: 251, flags: 0, backends: Array.from({ length: 5 }, (_, i) => `10.0.1.${i}`) },
        { name: 'b', address: '192.0.2.2', ports: [80], size: 251, flags: 0, backends: ['10.0.1.0'] },
      ],
      {},
    );
    const plan = planDatapath(EMPTY_IMAGE, many, { ...caps, maxBackends: 4 });
    expect([...plan.refused.keys()]).toEqual(['a']);
    expect(plan.refused.get('a')).toMatch(/at most 4 backends/);
    const image = applyPlan(EMPTY_IMAGE, plan.ops);
    expect(image.vips.map((v) => v.key.address)).toEqual(['192.0.2.2']);
  });

  it('never pushes out a programmed VIP for a new one when the VIP keys are full; the new one is refused', () => {
    const ports = (n: number, from: number) => Array.from({ length: n }, (_, i) => from + i);
    const first = desiredOf([{ name: 'old', address: '192.0.2.1', ports: ports(12, 1000), size: 251, flags: 0, backends: ['10.0.0.1'] }], {});
    const image = applyPlan(EMPTY_IMAGE, planDatapath(EMPTY_IMAGE, first, caps).ops);
    // "new" sorts first by name and is listed first, yet "old" keeps its place.
    const both = desiredOf(
      [
        { name: 'new', address: '192.0.2.9', ports: ports(8, 2000), size: 251, flags: 0, backends: ['10.0.0.2'] },
        { name: 'old', address: '192.0.2.1', ports: ports(12, 1000), size: 251, flags: 0, backends: ['10.0.0.1', '10.0.0.3'] },
        { name: 'small', address: '192.0.2.5', ports: [80], size: 251, flags: 0, backends: ['10.0.0.2'] },
      ],
      {},
    );
    const plan = planDatapath(image, both, caps);
    expect([...plan.refused.keys()]).toEqual(['new']);
    expect(plan.refused.get('new')).toMatch(/at most 16 VIP keys/);
    const after = applyPlan(image, plan.ops);
    expect(after.vips).toHaveLength(13);
    expect(after.vips.filter((v) => v.key.address === '192.0.2.1')).toHaveLength(12);
    // The plan never writes more keys than the map holds (the kernel would refuse: E2BIG).
    expect(new Set(after.vips.map((v) => `${v.key.address}|${v.key.port}`)).size).toBeLessThanOrEqual(caps.maxVips);
  });

  it('writes a table the image does not know (null key: read from maps this agent did not write) once, then never again', () => {
    const desired = desiredOf([{ name: 'a', address: '192.0.2.1', ports: [80], size: 251, flags: 0, backends: ['10.0.0.1', '10.0.0.2'] }], {});
    const image = applyPlan(EMPTY_IMAGE, planDatapath(EMPTY_IMAGE, desired, caps).ops);
    const slot = image.vips[0]!.meta.tableSlot;
    const unknown: DatapathImage = { ...image, tables: new Map([[slot, { size: 251, key: null }]]) };
    const plan = planDatapath(unknown, desired, caps);
    expect(plan.ops.map((o) => o.op)).toEqual(['putTable']);
    expect(planDatapath(applyPlan(unknown, plan.ops), desired, caps).ops).toEqual([]);
  });

  it('translates a table only when it is written: an unchanged table is never asked for its slots', () => {
    const desired = desiredOf([{ name: 'a', address: '192.0.2.1', ports: [80], size: 251, flags: 0, backends: ['10.0.0.1', '10.0.0.2'] }], {});
    const image = applyPlan(EMPTY_IMAGE, planDatapath(EMPTY_IMAGE, desired, caps).ops);
    let asked = 0;
    const counted: DesiredDatapath = { ...desired, vips: desired.vips.map((v) => ({ ...v, table: { ...v.table!, content: () => (asked++, v.table!.content()) } })) };
    expect(planDatapath(image, counted, caps).ops).toEqual([]);
    expect(asked).toBe(0);
  });
});
