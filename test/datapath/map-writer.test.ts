// map-writer.test.ts: the agent's path into the maps, on the real kernel:
// plan -> apply -> read back equals the planned image (table keys, down
// state) and the kernel's slots are the planned ones (tables, alternates),
// planning again against what was read is empty, identities stay across
// changes, and packets follow the programmed tables (checked against the
// TypeScript flow hash). Tables go in through mmap()able inner maps swapped
// in batches.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCounter } from '../../src/bpf/datapath.js';
import { MapWriter, type ControlSettings } from '../../src/bpf/map-writer.js';
import { ETH_P_IP, ethernet, ipv4, PROTO_TCP, tcp } from '../../lab/packet.js';
import { EMPTY_IMAGE, NO_BACKEND_INDEX, planDatapath, tableSlotsOf, type DatapathImage, type DesiredDatapath } from '../../src/core/datapath-plan.js';
import { desiredState, tableOfSlots, type Observations, type VipSpec } from '../../src/core/desired-state.js';
import { flowHash, tableIndex } from '../../src/core/flow-hash.js';
import { ipBytes } from '../../src/core/net.js';
import { LbHarness } from './lib/harness.js';

const control: ControlSettings = { srcMac: '02:00:00:00:00:02', mtu: 1500, v4SrcPrefix: '172.16.0.0/16', v6SrcPrefix: 'fd00:7864:6c62::/96' };
const macOf = (address: string) => `02:be:00:00:00:${address.split('.').at(-1)!.padStart(2, '0')}`;

function spec(backends: string[], tableSize = 4093): VipSpec {
  return {
    name: 'web',
    address: '192.0.2.10',
    ports: [{ port: 80, protocol: 'TCP' }, { port: 443, protocol: 'TCP' }],
    mode: 'l2dsr',
    affinity: 'fiveTuple',
    flowTable: false,
    tableSize,
    backends: backends.map((address) => ({ address, weight: 1 })),
  };
}

let h: LbHarness;
let writer: MapWriter;
beforeAll(() => {
  h = new LbHarness();
  writer = new MapWriter(h.maps);
});
afterAll(() => h?.close());

function converge(vips: VipSpec[], image: DatapathImage, current?: Map<string, ReturnType<Observations['currentTable']>>) {
  const obs: Observations = {
    healthy: () => true,
    mac: (a) => ({ ok: true, mac: macOf(a) }),
    currentTable: (name) => current?.get(name),
  };
  const { desired, status } = desiredState(vips, obs);
  const plan = planDatapath(image, desired, writer.capacities());
  const after = writer.apply(image, plan.ops, control);
  return { desired, status, plan, after };
}

function synTo(client: string, sport: number, dport: number): Uint8Array {
  return ethernet({ dst: control.srcMac, src: '02:cc:00:00:00:01', type: ETH_P_IP }, ipv4({ src: client, dst: '192.0.2.10', proto: PROTO_TCP }, tcp(client, '192.0.2.10', { sport, dport })));
}

describe('map writer', () => {
  it('programs a plan, reads back exactly what was planned, and re-planning is empty', () => {
    const start = writer.readImage();
    expect(start.vips).toEqual([]);
    const { desired, after, plan } = converge([spec(['10.0.0.1', '10.0.0.2', '10.0.0.3'])], start);
    expect(plan.ops.length).toBeGreaterThan(0);
    const read = writer.readImage();
    expect([...read.vips].sort((a, b) => a.key.port - b.key.port)).toEqual([...after.vips].sort((a, b) => a.key.port - b.key.port));
    expect(read.fragVips).toEqual(after.fragVips);
    expect([...read.backends]).toEqual([...after.backends]);
    expect([...read.tables]).toEqual([...after.tables]);
    // The kernel holds the planned slots: each owner's address, slot by slot.
    const vip = desired.vips[0]!;
    const wanted = vip.table!.content().slots;
    const held = writer.readTable(read.vips[0]!.meta.tableSlot)!;
    expect(held.slots).toHaveLength(4093);
    for (let s = 0; s < 4093; s++) expect(read.backends.get(held.slots[s]!)!.address).toBe(vip.table!.owners[wanted[s]!]);
    expect(planDatapath(read, desired, writer.capacities()).ops).toEqual([]);
  });

  it('sends each flow to the backend the TypeScript model predicts, and counts it', () => {
    const image = writer.readImage();
    const table = writer.readTable(image.vips[0]!.meta.tableSlot)!.slots;
    const before = new Map([...image.backends.keys()].map((i) => [i, readCounter(h.maps.backendStats, i).packets]));
    const sent = new Map<number, number>();
    for (let i = 0; i < 2000; i++) {
      const client = `198.51.100.${(i % 200) + 1}`;
      const sport = 10000 + i;
      const frame = synTo(client, sport, 80);
      const r = h.runFast(frame);
      expect(r.verdict).toBe('TX');
      const predicted = table[tableIndex(flowHash({ src: ipBytes(client), dst: ipBytes('192.0.2.10'), sport, dport: 80, proto: 6 }, 'fiveTuple'), table.length)]!;
      const mac = Array.from(r.out.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
      expect(mac).toBe(image.backends.get(predicted)!.mac);
      sent.set(predicted, (sent.get(predicted) ?? 0) + 1);
    }
    for (const [i, n] of sent) expect(readCounter(h.maps.backendStats, i).packets - before.get(i)!).toBe(BigInt(n));
    expect(sent.size).toBe(3);
  });

  it('keeps indices and the VIP id across a backend change, and moves only the removed backend flows', () => {
    const image = writer.readImage();
    const oldIndex = new Map([...image.backends].map(([i, b]) => [b.address, i]));
    const vipId = image.vips[0]!.meta.vipId;
    const oldTable = writer.readTable(image.vips[0]!.meta.tableSlot)!.slots;
    const owners = [...image.backends.values()].map((b) => b.address).sort();
    const current = new Map([['web', { size: 4093 as const, backends: owners.map((key) => ({ key, weight: 1 })), slots: Uint32Array.from(oldTable, (i) => owners.indexOf(image.backends.get(i)!.address)) }]]);
    const { plan } = converge([spec(['10.0.0.1', '10.0.0.3', '10.0.0.4'])], image, current);
    expect(plan.ops.map((o) => o.op)).toEqual(['putBackend', 'putTable', 'clearBackend']);
    const read = writer.readImage();
    const newIndex = new Map([...read.backends].map(([i, b]) => [b.address, i]));
    expect(newIndex.get('10.0.0.1')).toBe(oldIndex.get('10.0.0.1'));
    expect(newIndex.get('10.0.0.3')).toBe(oldIndex.get('10.0.0.3'));
    expect(read.vips[0]!.meta.vipId).toBe(vipId);
    const newTable = writer.readTable(read.vips[0]!.meta.tableSlot)!.slots;
    let moved = 0;
    let removedSlots = 0;
    for (let s = 0; s < newTable.length; s++) {
      const was = image.backends.get(oldTable[s]!)!.address;
      if (was === '10.0.0.2') removedSlots++;
      if (read.backends.get(newTable[s]!)!.address !== was) moved++;
    }
    expect(moved).toBe(removedSlots);
  });

  it('programs alternates and the down state, reads them back as planned, and re-planning is empty', () => {
    const image = writer.readImage();
    const { desired } = converge([spec(['10.0.0.1', '10.0.0.3', '10.0.0.4'])], image);
    // Alternates as owner positions: the next owner, none on every seventh slot.
    const withAlternates = (down: string[]): DesiredDatapath => ({
      ...desired,
      vips: desired.vips.map((v) => {
        if (v.table === null) return v;
        const { slots } = v.table.content();
        return { ...v, table: tableOfSlots(v.table.size, v.table.owners, { slots, alternates: Uint32Array.from(slots, (o, s) => (s % 7 === 0 ? NO_BACKEND_INDEX : (o + 1) % v.table!.owners.length)) }) };
      }),
      down: new Set(down),
    });
    const wanted = withAlternates(['10.0.0.3']);
    const plan = planDatapath(image, wanted, writer.capacities());
    expect(plan.ops.map((o) => o.op)).toEqual(['setBackendDown', 'putTable']);
    const after = writer.apply(image, plan.ops, control);
    const read = writer.readImage();
    expect([...read.down]).toEqual([plan.backendIndex.get('10.0.0.3')]);
    expect([...read.down]).toEqual([...after.down]);
    expect([...read.tables]).toEqual([...after.tables]);
    expect(planDatapath(read, wanted, writer.capacities()).ops).toEqual([]);

    // The kernel holds the primaries and the alternates the plan translated.
    const put = plan.ops.find((o) => o.op === 'putTable')!;
    const translated = tableSlotsOf(put as Extract<typeof put, { op: 'putTable' }>);
    const held = writer.readVipTable(read.vips[0]!.key)!;
    expect(held.tableSize).toBe(4093);
    expect(Buffer.from(held.table!.slots.buffer).equals(Buffer.from(translated.slots.buffer))).toBe(true);
    expect(Buffer.from(held.table!.alternates.buffer).equals(Buffer.from(translated.alternates.buffer))).toBe(true);
    expect(translated.alternates.filter((a) => a === NO_BACKEND_INDEX).length).toBe(Math.ceil(4093 / 7));

    // Down moves from one backend to another: two writes, no table.
    const moved = planDatapath(read, withAlternates(['10.0.0.4']), writer.capacities());
    expect(moved.ops).toEqual([
      { op: 'setBackendDown', index: plan.backendIndex.get('10.0.0.4'), down: true },
      { op: 'setBackendDown', index: plan.backendIndex.get('10.0.0.3'), down: false },
    ]);
    writer.apply(read, moved.ops, control);
    expect([...writer.readImage().down]).toEqual([plan.backendIndex.get('10.0.0.4')]);

    // A down backend that leaves: its index is freed with nothing stale behind.
    const gone = converge([spec(['10.0.0.1', '10.0.0.3'])], writer.readImage());
    expect(gone.plan.ops.map((o) => o.op)).toContain('clearBackend');
    const end = writer.readImage();
    expect(end.down.size).toBe(0);
    expect(planDatapath(end, gone.desired, writer.capacities()).ops).toEqual([]);
  });

  it('knows what it wrote by inner map id; a table it did not write reads back with a null key, and is written again', () => {
    const image = writer.readImage();
    const slot = image.vips[0]!.meta.tableSlot;
    expect(image.tables.get(slot)!.key).not.toBeNull();
    const fresh = new MapWriter(h.maps); // another agent process: it wrote nothing
    const read = fresh.readImage();
    expect(read.tables.get(slot)).toEqual({ size: 4093, key: null });
    const { desired } = desiredState([spec(['10.0.0.1', '10.0.0.3'])], { healthy: () => true, mac: (a) => ({ ok: true, mac: macOf(a) }), currentTable: () => undefined });
    const plan = planDatapath(read, desired, fresh.capacities());
    expect(plan.ops.map((o) => o.op)).toEqual(['putTable']);
    fresh.apply(read, plan.ops, control);
    const known = fresh.readImage();
    expect(known.tables.get(slot)!.key).not.toBeNull();
    expect(planDatapath(known, desired, fresh.capacities()).ops).toEqual([]);
  });

  it('swaps many tables in one batch update, holds each distinct table once, and removes them', () => {
    const image = writer.readImage();
    const many = Array.from({ length: 300 }, (_, i) => ({ ...spec(['10.0.0.1', '10.0.0.3'], 251), name: `v${i}`, address: `192.0.${3 + (i >> 8)}.${i & 255}`, ports: [{ port: 80, protocol: 'TCP' as const }] }));
    const { after } = converge([spec(['10.0.0.1', '10.0.0.3']), ...many], image);
    expect(after.tables.size).toBe(301);
    const read = writer.readImage();
    expect([...read.tables].sort((a, b) => a[0] - b[0])).toEqual([...after.tables].sort((a, b) => a[0] - b[0]));
    for (const v of read.vips.slice(0, 20)) expect(writer.readTable(v.meta.tableSlot)!.slots).toHaveLength(v.meta.tableSize);
    // 301 slots, two distinct tables (the 300 equal ones share one inner map).
    expect(new Set([...writer.tableIds().values()].map((t) => t.id)).size).toBe(2);
    const { after: back } = converge([spec(['10.0.0.1', '10.0.0.3'])], read);
    expect(writer.readImage().tables.size).toBe(1);
    expect(back.tables.size).toBe(1);
  });

  it('holds 4096 VIP keys (issue 14): 64 VIPs of 64 ports fit, a 4097th key is refused', () => {
    expect(writer.capacities().maxVips).toBe(4096);
    const vips = Array.from({ length: 64 }, (_, i) => ({
      ...spec(['10.0.0.1', '10.0.0.3'], 251),
      name: `k${String(i).padStart(2, '0')}`,
      address: `192.0.9.${i + 1}`,
      ports: Array.from({ length: 64 }, (_, p) => ({ port: 1000 + p, protocol: 'TCP' as const })),
    }));
    const extra = { ...spec(['10.0.0.1'], 251), name: 'zz-extra', address: '192.0.10.1', ports: [{ port: 80, protocol: 'TCP' as const }] };
    converge([], writer.readImage()); // nothing held: all 4096 keys free in one pass
    const { after, plan } = converge([...vips, extra], writer.readImage());
    expect(after.vips).toHaveLength(4096);
    expect([...plan.refused.keys()]).toEqual(['zz-extra']);
    expect(writer.readImage().vips).toHaveLength(4096);
  });

  it('pins each inner map it writes by id, opens it again from the pin after a restart, and unpins what no slot holds', () => {
    const pins = join('/sys/fs/bpf', `xdplb-map-writer-test-${String(process.pid)}`, 'tables');
    try {
      const pinned = new MapWriter(h.maps, pins);
      const held = pinned.readImage();
      pinned.apply(held, planDatapath(held, { vips: [], backends: new Map() }, pinned.capacities()).ops, control);
      const image = pinned.readImage();
      const { after } = (() => {
        const { desired } = desiredState([spec(['10.0.0.1', '10.0.0.2', '10.0.0.4'])], { healthy: () => true, mac: (a) => ({ ok: true, mac: macOf(a) }), currentTable: () => undefined });
        const plan = planDatapath(image, desired, pinned.capacities());
        return { after: pinned.apply(image, plan.ops, control) };
      })();
      const slot = after.vips[0]!.meta.tableSlot;
      const id = pinned.tableIds().get(slot)!.id;
      expect(readdirSync(pins)).toEqual([String(id)]);
      // Another process (a restarted agent) reads the table through the pin, and sizes it from the VIP entry.
      const again = new MapWriter(h.maps, pins);
      expect(again.readImage().tables.get(slot)).toEqual({ size: 4093, key: null });
      expect(again.readTable(slot)!.slots).toHaveLength(4093);
      // A new table in that slot: the old one's pin goes with the pass.
      const { desired } = desiredState([spec(['10.0.0.1', '10.0.0.2'])], { healthy: () => true, mac: (a) => ({ ok: true, mac: macOf(a) }), currentTable: () => undefined });
      const read = again.readImage();
      again.apply(read, planDatapath(read, desired, again.capacities()).ops, control);
      expect(readdirSync(pins)).toEqual([String(again.tableIds().get(slot)!.id)]);
      expect(again.tableIds().get(slot)!.id).not.toBe(id);
    } finally {
      rmSync(join(pins, '..'), { recursive: true, force: true });
    }
  });

  it('removes everything it programmed when nothing is wanted', () => {
    const image = writer.readImage();
    const plan = planDatapath(image, { vips: [], backends: new Map() }, writer.capacities());
    writer.apply(image, plan.ops, control);
    expect(writer.readImage()).toEqual(EMPTY_IMAGE);
    expect(h.run(synTo('198.51.100.1', 1234, 80)).verdict).toBe('PASS');
  });
});
