// agent-l2dsr.test.ts: `xdplb agent` in standalone mode on a namespace
// network, real TCP through the XDP program with L2 direct server return:
// weights show in the distribution, a 5-tuple keeps its backend, the maps
// read back equal the intended state, and a config change moves only the
// minimum of flows; with the flow table, draining a backend (weight 0) keeps
// its established connections.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { lbMapsBy } from '../../src/bpf/datapath.js';
import { openPinnedMap } from '../../src/bpf/loader.js';
import { MapWriter } from '../../src/bpf/map-writer.js';
import { buildTable, successorTable, tableChange } from '../../src/core/maglev.js';
import { tableFromImage } from '../../src/core/desired-state.js';
import { brokenBetween, ConnectionPool } from '../../lab/connections.js';
import { vipConfig } from '../../lab/agent-config.js';
import { LbTopology, type AgentProcess } from '../../lab/topology.js';

let topo: LbTopology;
let agent: AgentProcess;

function config(weights: Record<string, number>, flowTable = false): string {
  const backends = topo.backends.filter((b) => weights[b.name] !== undefined).map((b) => ({ address: b.address, weight: weights[b.name]! }));
  return vipConfig({ address: topo.vip, mode: 'l2dsr', tableSize: 4093, flowTable, backends });
}

/** The VIP's table as programmed, read from the pinned maps (owners by address). */
function programmedTable() {
  const dir = join(topo.pinDir, 'eth0');
  const { readdirSync } = require('node:fs') as typeof import('node:fs');
  const mapsDir = join(dir, readdirSync(dir).find((f: string) => f.startsWith('maps-'))!);
  const maps = lbMapsBy((name) => openPinnedMap(join(mapsDir, name), name));
  try {
    const writer = new MapWriter(maps);
    const image = writer.readImage();
    const vip = image.vips.find((v) => v.key.address === topo.vip)!;
    return tableFromImage(vip.meta.tableSize, writer.readTable(vip.meta.tableSlot)!.slots, (i) => image.backends.get(i)?.address)!;
  } finally {
    for (const m of Object.values(maps)) m.close();
  }
}

beforeAll(async () => {
  topo = new LbTopology('l2', 3);
  const path = topo.writeConfig('agent.yaml', config({ be1: 1, be2: 1, be3: 2 }));
  agent = topo.startAgent(path);
  await topo.waitForAgent('attached and programmed', (s) => s.vips[0]?.digest != null);
}, 60_000);

afterAll(() => topo?.destroy());

describe('agent, standalone, l2dsr', () => {
  it('delivers real connections with the configured weights', async () => {
    const r = await topo.load(['--count', '2000', '--concurrency', '32']);
    expect(r.failed).toBe(0);
    expect(r.ok).toBe(2000);
    const share = (name: string) => (r.byBackend[name] ?? 0) / r.ok;
    // Each connection is an independent draw: with 2000 draws the standard
    // deviation of a 25% share is about 1%; 5 points is a wide margin.
    expect(share('be1')).toBeGreaterThan(0.2);
    expect(share('be1')).toBeLessThan(0.3);
    expect(share('be2')).toBeGreaterThan(0.2);
    expect(share('be2')).toBeLessThan(0.3);
    expect(share('be3')).toBeGreaterThan(0.45);
    expect(share('be3')).toBeLessThan(0.55);
    console.log(`l2dsr distribution over ${r.ok} connections (weights 1:1:2): ${JSON.stringify(r.byBackend)}`);
  });

  it('exports the datapath counters and its own state to Prometheus', () => {
    const text = topo.lb.run('curl', ['-sf', 'http://127.0.0.1:9477/metrics']);
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    expect(value(/^xdplb_vip_packets_total\{vip="web"[^}]*\} (\d+)$/m)).toBeGreaterThan(2000);
    expect(value(/^xdplb_datapath_packets_total\{reason="FWD_L2DSR"[^}]*\} (\d+)$/m)).toBeGreaterThan(2000);
    expect(value(/^xdplb_backend_packets_total\{backend="10\.50\.0\.13"[^}]*\} (\d+)$/m)).toBeGreaterThan(900);
    expect(text).toMatch(/^xdplb_agent_xdp_mode\{interface="eth0",mode="native"\} 1$/m);
    expect(text).toMatch(/^xdplb_agent_table_info\{vip="web",digest="sha256:[0-9a-f]{64}",interface="eth0"\} 1$/m);
    expect(text).toMatch(/^xdplb_agent_programming_seconds_count\{interface="eth0"\} [1-9]/m);
  });

  it('keeps a long-lived connection (one 5-tuple) on one backend', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await topo.load(['--keepalive', '40', '--gap-ms', '5']);
      expect(r.failed).toBe(0);
      expect(r.ok).toBe(40);
      expect(r.connections).toBe(1);
      expect(Object.keys(r.byBackend)).toHaveLength(1);
    }
  });

  it('programs exactly the table the core computes for the config', () => {
    const table = programmedTable();
    const expected = buildTable({ size: 4093, backends: topo.backends.map((b, i) => ({ key: b.address, weight: i === 2 ? 2 : 1 })) });
    expect(table.backends.map((b) => b.key)).toEqual(expected.backends.map((b) => b.key));
    expect(Array.from(table.slots)).toEqual(Array.from(expected.slots));
  });

  it('applies config changes (remove, add, re-weight) within a second, moving only the minimum of slots', async () => {
    const steps: [string, Record<string, number>][] = [
      ['remove be2', { be1: 1, be3: 2 }],
      ['add be2 with weight 3', { be1: 1, be2: 3, be3: 2 }],
      ['re-weight be3 to 1', { be1: 1, be2: 3, be3: 1 }],
    ];
    for (const [what, weights] of steps) {
      const before = programmedTable();
      const mark = topo.programmings('web');
      topo.writeConfig('agent.yaml', config(weights));
      await topo.programmed('web', mark, () => true, { timeoutMs: 5000 });
      const after = programmedTable();
      // Maps read back equal the intended state: the successor the core computes from the table before.
      const intended = successorTable(before, { size: 4093, backends: topo.backends.filter((b) => weights[b.name] !== undefined).map((b) => ({ key: b.address, weight: weights[b.name]! })) });
      expect(Array.from(after.slots), what).toEqual(Array.from(intended.slots));
      const change = tableChange(before, intended);
      expect(change.moved, what).toBe(change.minimum);
      console.log(`config change "${what}": ${change.moved} of 4093 slots moved, minimum ${change.minimum}`);
      const r = await topo.load(['--count', '300']);
      expect(r.failed).toBe(0);
      expect(Object.keys(r.byBackend).sort()).toEqual(Object.keys(weights).sort());
    }
  });

  it('with the flow table, draining a backend (weight 0) keeps every established connection (issue 11 item 5)', async () => {
    let mark = topo.programmings('web');
    topo.writeConfig('agent.yaml', config({ be1: 1, be2: 1, be3: 1 }, true));
    await topo.programmed('web', mark, () => true, { timeoutMs: 5000 });
    const pool = new ConnectionPool(topo.client);
    try {
      const opened = await pool.open(topo.vip, 60);
      const onBe1 = opened.filter((c) => 'backend' in c && c.backend === 'be1').length;
      expect(onBe1).toBeGreaterThan(5);
      mark = topo.programmings('web');
      topo.writeConfig('agent.yaml', config({ be1: 0, be2: 1, be3: 1 }, true));
      await topo.programmed('web', mark, (v) => v.serving === 2, { timeoutMs: 5000 });
      const after = await pool.probe();
      const { kept, broken } = brokenBetween(opened, after);
      console.log(`drain of be1 with the flow table: ${kept} of ${opened.length} connections kept (${onBe1} on be1), ${broken.length} broken`);
      expect(broken).toEqual([]);
      // New connections no longer go to the drained backend.
      const r = await topo.load(['--count', '200']);
      expect(r.failed).toBe(0);
      expect(r.byBackend.be1).toBeUndefined();
    } finally {
      await pool.close();
    }
  });
});
