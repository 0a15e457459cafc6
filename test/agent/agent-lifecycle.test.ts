// agent-lifecycle.test.ts: the agent's promises under stress, with real TCP:
// kill -9 mid-stream and restart drops no connection and adopts (same program
// and map ids); an upgrade from another program build drops none either; a
// backend whose server dies leaves the table after its health threshold; an
// invalid config is refused while the old state keeps forwarding; --cleanup
// removes everything.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeFd, linkInfo, mapInfo, openPinned } from '../../src/bpf/loader.js';
import { vipConfig } from '../../lab/agent-config.js';
import { LbTopology, ROOT, type AgentProcess } from '../../lab/topology.js';

let topo: LbTopology;
let agent: AgentProcess;
let configPath: string;

function config(opts: { healthCheck?: boolean } = {}): string {
  return vipConfig({ address: topo.vip, mode: 'l2dsr', tableSize: 4093, healthCheck: opts.healthCheck !== false, backends: topo.backends });
}

/** Ids of the attached program and of the pinned maps: what "adopted, not recreated" means. */
function ids(): { prog: number; maps: number[] } {
  const dir = join(topo.pinDir, 'eth0');
  const linkFd = openPinned(join(dir, 'link'));
  const prog = linkInfo(linkFd).progId;
  closeFd(linkFd);
  const mapsDir = join(dir, readdirSync(dir).find((f) => f.startsWith('maps-'))!);
  const maps = readdirSync(mapsDir)
    .sort()
    .map((name) => {
      const fd = openPinned(join(mapsDir, name));
      const id = mapInfo(fd).id;
      closeFd(fd);
      return id;
    });
  return { prog, maps };
}

/** The agent answers /status (it attached) and the kernel holds a table for every VIP (read back). */
const started = () => topo.waitForAgent('attached and programmed', (s) => s.vips.length > 0 && s.vips.every((v) => v.digest !== null) && s, { timeoutMs: 30_000 });

beforeAll(async () => {
  topo = new LbTopology('lc', 3);
  configPath = topo.writeConfig('agent.yaml', config());
  agent = topo.startAgent(configPath);
  await started();
}, 60_000);

afterAll(() => topo?.destroy());

describe('agent lifecycle', () => {
  it('kill -9 in the middle of a stream of new connections, then restart: zero failed, adopted', async () => {
    const before = ids();
    const load = await topo.startLoad(600);
    await new Promise((r) => setTimeout(r, 1500));
    agent.child.kill('SIGKILL');
    await agent.exited;
    await new Promise((r) => setTimeout(r, 1000)); // no agent at all for a second
    agent = topo.startAgent(configPath);
    expect((await started()).datapath).toBe('adopt');
    await new Promise((r) => setTimeout(r, 1500));
    const r = await load.stop();
    console.log(`kill -9 + restart under load: ${r.ok} connections ok, ${r.failed} failed ${JSON.stringify(r.errors)}`);
    expect(r.ok).toBeGreaterThan(2000);
    expect(r.failed).toBe(0);
    expect(ids()).toEqual(before);
  });

  it('upgrades pinned state of another program build without a failed connection', async () => {
    // "Another build": the same program compiled with a different flow-table capacity.
    const old = join(topo.dir, 'xdp_lb-old.o');
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-Wall', '-DXDPLB_FLOW_TABLE_SIZE=131072', `-I${join(ROOT, 'bpf/include')}`, `-I/usr/include/${process.arch === 'x64' ? 'x86_64' : 'aarch64'}-linux-gnu`, '-c', join(ROOT, 'bpf/xdp_lb.c'), '-o', old]);
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    // Downgrade to the old build first (an upgrade in the other direction), then upgrade back.
    agent = topo.startAgent(configPath, ['--object', old]);
    await started();
    const oldIds = ids();
    const load = await topo.startLoad(400);
    await new Promise((r) => setTimeout(r, 500));
    agent.child.kill('SIGTERM');
    await agent.exited;
    agent = topo.startAgent(configPath);
    expect((await started()).datapath).toBe('upgrade');
    await new Promise((r) => setTimeout(r, 500));
    const r = await load.stop();
    console.log(`upgrade under load: ${r.ok} connections ok, ${r.failed} failed ${JSON.stringify(r.errors)}`);
    expect(r.failed).toBe(0);
    const newIds = ids();
    expect(newIds.prog).not.toBe(oldIds.prog);
    expect(readdirSync(join(topo.pinDir, 'eth0')).filter((f) => f.startsWith('maps-'))).toHaveLength(1);
  });

  it('takes a backend whose server died out of the table after its health threshold, and back', async () => {
    const victim = topo.backends[1]!;
    const mark = topo.programmings('web');
    const killedAt = Date.now();
    topo.stopServer(victim);
    await topo.waitForAgent('the victim unhealthy', (s) => s.vips[0]?.backends.find((b) => b.address === victim.address)?.healthy === false, { timeoutMs: 10_000 });
    const detect = Date.now() - killedAt;
    const programmed = await topo.programmed('web', mark, (v) => v.serving === 2, { timeoutMs: 10_000 });
    const total = programmed.programmedAt! - killedAt;
    console.log(`health check failover: maps programmed ${total} ms after the kill (interval 100 ms x threshold 2); /status, polled every 50 ms, showed the failed checks ${detect} ms after it`);
    const r = await topo.load(['--count', '300']);
    expect(r.failed).toBe(0);
    expect(r.byBackend[victim.name]).toBeUndefined();

    const back = topo.programmings('web');
    await topo.startServer(victim);
    await topo.programmed('web', back, (v) => v.serving === 3, { timeoutMs: 10_000 });
    const again = await topo.load(['--count', '300']);
    expect(again.failed).toBe(0);
    expect(again.byBackend[victim.name]).toBeGreaterThan(0);
  });

  it('refuses an invalid config with every problem listed, and keeps forwarding the old state', async () => {
    const before = ids();
    const mark = topo.agentStatus()!.rejectedConfigs;
    topo.writeConfig('agent.yaml', 'vips:\n  - name: web\n    address: 10.60.0.300\n    ports: [{ port: 99999 }]\n    backends: []\n');
    const rejected = await topo.waitForAgent('the config rejected', (s) => s.rejectedConfigs > mark && s, { timeoutMs: 5000 });
    expect(rejected.lastRejection!.length).toBeGreaterThanOrEqual(2);
    const r = await topo.load(['--count', '300']);
    expect(r.failed).toBe(0);
    expect(Object.keys(r.byBackend)).toHaveLength(3);
    expect(ids()).toEqual(before);
    topo.writeConfig('agent.yaml', config());
  });

  it('leaves the datapath running on SIGTERM, and --cleanup removes program and pins', async () => {
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    const r = await topo.load(['--count', '200']);
    expect(r.failed).toBe(0);
    topo.lb.run(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'agent', '--cleanup', '--interface', 'eth0', '--pin-dir', topo.pinDir]);
    expect(existsSync(join(topo.pinDir, 'eth0'))).toBe(false);
    expect(topo.lb.ip('-d', 'link', 'show', 'eth0')).not.toMatch(/prog\/xdp/);
  });
});
