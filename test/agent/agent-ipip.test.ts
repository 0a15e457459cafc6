// agent-ipip.test.ts: `xdplb agent` with IPIP encapsulation on a namespace
// network. Backends run the decap program (`xdplb decap`; this kernel has no
// IPIP driver) and answer clients directly: real TCP connections, weights in
// the distribution, decap counters moving on the backends.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reason } from '../../src/bpf/abi.js';
import { readCounter } from '../../src/bpf/datapath.js';
import { openPinnedMap } from '../../src/bpf/loader.js';
import { vipConfig } from '../../lab/agent-config.js';
import { LbTopology, XDPLB, type AgentProcess } from '../../lab/topology.js';

let topo: LbTopology;
let agent: AgentProcess;

beforeAll(async () => {
  topo = new LbTopology('ip', 3);
  for (const b of topo.backends) topo.decap(b);
  const path = topo.writeConfig('agent.yaml', vipConfig({ address: topo.vip, mode: 'ipip', backends: topo.backends.map((b, i) => ({ address: b.address, weight: i + 1 })) }));
  agent = topo.startAgent(path);
  await topo.waitForAgent('attached and programmed', (s) => s.vips[0]?.digest != null);
}, 60_000);

afterAll(() => topo?.destroy());

describe('agent, standalone, ipip', () => {
  it('delivers real connections through IPIP to decapsulating backends, with the weights', async () => {
    const r = await topo.load(['--count', '1800', '--concurrency', '32']);
    expect(r.failed).toBe(0);
    const share = (name: string) => (r.byBackend[name] ?? 0) / r.ok;
    // weights 1:2:3 -> 1/6, 2/6, 3/6; 1800 draws: sd of a 1/3 share is about 1.1%.
    expect(share('be1')).toBeGreaterThan(1 / 6 - 0.05);
    expect(share('be1')).toBeLessThan(1 / 6 + 0.05);
    expect(share('be2')).toBeGreaterThan(2 / 6 - 0.05);
    expect(share('be2')).toBeLessThan(2 / 6 + 0.05);
    expect(share('be3')).toBeGreaterThan(3 / 6 - 0.05);
    expect(share('be3')).toBeLessThan(3 / 6 + 0.05);
    console.log(`ipip distribution over ${r.ok} connections (weights 1:2:3): ${JSON.stringify(r.byBackend)}`);
  });

  it('keeps a long-lived connection on one backend', async () => {
    const r = await topo.load(['--keepalive', '50', '--gap-ms', '2']);
    expect(r.failed).toBe(0);
    expect(r.connections).toBe(1);
    expect(Object.keys(r.byBackend)).toHaveLength(1);
  });

  it('the backends decapsulated the packets (their counters moved)', () => {
    const b = topo.backends[2]!;
    const stats = openPinnedMap(join(topo.pinDir, 'decap', b.name, 'eth0', 'decap_stats'));
    try {
      expect(readCounter(stats, Reason.DECAP_OK).packets).toBeGreaterThan(100n);
    } finally {
      stats.close();
    }
  });

  it('xdplb decap refuses bad input with one line', () => {
    const b = topo.backends[0]!;
    const run = (...args: string[]) => {
      try {
        b.ns.run(process.execPath, [XDPLB, 'decap', ...args]);
        return '';
      } catch (e) {
        return String((e as { stderr?: string }).stderr);
      }
    };
    expect(run('--interface', 'eth0')).toMatch(/give at least one --vip ADDR/);
    expect(run('--interface', 'eth0', '--vip', 'nope')).toMatch(/not an IP address/);
    expect(run('--interface', 'nosuch0', '--vip', '10.1.1.1', '--pin-dir', join(topo.pinDir, 'x'))).toMatch(/interface nosuch0 does not exist/);
  });
});
