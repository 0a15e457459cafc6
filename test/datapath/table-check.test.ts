// table-check.test.ts: the agent's engine on the real kernel maps holds no
// table slots, yet finds a table changed behind its back: a resync reads a
// few tables' slots back, digests them against what was written, counts a
// difference in xdplb_agent_table_check_failures_total and writes the table
// again (issue 14: tables live in the kernel, compared by digest).
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/agent/engine.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { StandaloneSource } from '../../src/agent/standalone-source.js';
import { encodeTableSlots } from '../../src/bpf/abi.js';
import { openMapById } from '../../src/bpf/loader.js';
import type { ControlSettings } from '../../src/bpf/map-writer.js';
import { parseStandaloneConfig } from '../../src/config/standalone.js';
import { EMPTY_IMAGE } from '../../src/core/datapath-plan.js';
import { LbHarness } from './lib/harness.js';

const control: ControlSettings = { srcMac: '02:00:00:00:00:02', mtu: 1500, v4SrcPrefix: '172.16.0.0/16', v6SrcPrefix: 'fd00:7864:6c62::/96' };
const config = parseStandaloneConfig(`
vips:
  - name: web
    address: 192.0.2.10
    ports: [{ port: 80 }]
    tableSize: 4093
    backends:
      - { address: 10.0.0.1, mac: "02:be:00:00:00:01" }
      - { address: 10.0.0.2, mac: "02:be:00:00:00:02" }
      - { address: 10.0.0.3, mac: "02:be:00:00:00:03" }
`);

let h: LbHarness;
beforeAll(() => {
  h = new LbHarness();
});
afterAll(() => h?.close());

async function failures(m: AgentMetrics): Promise<number> {
  return (await m.tableCheckFailures.get()).values[0]?.value ?? 0;
}

describe('table check on resync', () => {
  it('finds a table changed behind the agent, counts it and writes it again', async () => {
    const metrics = new AgentMetrics();
    const resolver = { resolve: () => Promise.resolve({ ok: false as const, reason: 'static MACs only' }) };
    const engine = new Engine({ writer: h.writer, control, resolver, metrics, log: pino({ level: 'silent' }) }, EMPTY_IMAGE);
    engine.setSource(new StandaloneSource(config, () => true));
    await engine.settled();
    const digest = engine.programmed.get('web');
    expect(digest).toMatch(/^sha256:/);
    expect(engine.status[0]!.digest).toBe(digest);

    // A resync with nothing changed: the slots read back match.
    engine.resync();
    await engine.settled();
    expect(await failures(metrics)).toBe(0);

    // Another process writes into the live inner map: every slot to the first slot's backend, no alternates.
    const slot = engine.image.vips[0]!.meta.tableSlot;
    const id = h.maps.tables.lookup(Buffer.from(new Uint32Array([slot]).buffer))!.readUInt32LE(0);
    const inner = openMapById(id);
    const before = h.writer.readTable(slot)!;
    const forged = encodeTableSlots(new Uint32Array(4093).fill(before.slots[0]!), undefined);
    inner.writeMapped(new Uint8Array(forged.buffer));
    inner.close();
    expect(h.writer.readTable(slot)!.slots.every((i) => i === before.slots[0])).toBe(true);

    engine.resync();
    await engine.settled();
    expect(await failures(metrics)).toBe(1);
    // Written again: the kernel holds the wanted slots, the digest read back is the wanted one again.
    await engine.settled();
    const after = h.writer.readTable(engine.image.vips[0]!.meta.tableSlot)!;
    expect(Buffer.from(after.slots.buffer).equals(Buffer.from(before.slots.buffer))).toBe(true);
    expect(engine.programmed.get('web')).toBe(digest);
    engine.resync();
    await engine.settled();
    expect(await failures(metrics)).toBe(1);
    engine.stop();
  });
});
