// agent.ts: `npm run bench:agent`. How long the agent takes to program 1, 100
// and 1000 VIPs of 65537 slots (10 backends each) from scratch, and to follow
// a one-backend change (a backend shared by every VIP leaves; and one VIP's
// backend leaves), measured through the agent's own path (desired state ->
// plan -> map writer) on a loaded xdp_lb.o. The baseline, measured in the same
// run, is the floor of that work: creating the inner maps and batch-writing
// the same slots, nothing else. Then the real agent process is started on a
// namespace interface with 1000 VIPs and its resident memory is read.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lbMaps } from '../src/bpf/datapath.js';
import { BpfObject, createMap, MapFlags, MapType } from '../src/bpf/loader.js';
import { MapWriter, type ControlSettings } from '../src/bpf/map-writer.js';
import { objectPath } from '../src/bpf/objects.js';
import { EMPTY_IMAGE, planDatapath, type DatapathImage } from '../src/core/datapath-plan.js';
import { DesiredMemo, desiredState, tableFromImage, type Observations, type VipSpec } from '../src/core/desired-state.js';

const json = process.argv.includes('--json');
const root = join(import.meta.dirname, '../..');
const control: ControlSettings = { srcMac: '02:00:00:00:00:02', mtu: 1500, v4SrcPrefix: '172.16.0.0/16', v6SrcPrefix: 'fd00:7864:6c62::/96' };
const BACKENDS = 10;
const SIZE = 65537;

function specs(n: number, down: (vip: number, b: number) => boolean = () => false): VipSpec[] {
  return Array.from({ length: n }, (_, v) => ({
    name: `vip-${v}`,
    address: `10.${100 + (v >> 8)}.${v & 255}.1`,
    ports: [{ port: 80, protocol: 'TCP' as const }],
    mode: 'ipip' as const,
    affinity: 'fiveTuple' as const,
    flowTable: false,
    tableSize: SIZE,
    backends: Array.from({ length: BACKENDS }, (_, b) => ({ address: `10.0.${b}.${(v % 200) + 1}`, weight: down(v, b) ? 0 : 1 })),
  }));
}

function tableArray(image: DatapathImage, vips: VipSpec[]): (name: string) => Uint32Array | undefined {
  const keyOf = new Map(vips.map((v) => [v.name, `${v.address}|80|TCP`]));
  const byKey = new Map(image.vips.map((e) => [`${e.key.address}|${e.key.port}|${e.key.protocol}`, e]));
  return (name) => {
    const entry = byKey.get(keyOf.get(name)!);
    return entry === undefined ? undefined : image.tables.get(entry.meta.tableSlot);
  };
}

function observations(image: DatapathImage, vips: VipSpec[]): Observations {
  const arrayOf = tableArray(image, vips);
  return {
    healthy: () => true,
    mac: () => ({ ok: true, mac: '02:be:00:00:00:01' }),
    currentTable: (name) => {
      const slots = arrayOf(name);
      return slots === undefined ? undefined : tableFromImage(slots.length, slots, (i) => image.backends.get(i)?.address);
    },
    currentTableArray: arrayOf,
  };
}

/** desired state -> plan -> apply, as the engine does (memo included); returns ms and the new image. */
function program(writer: MapWriter, image: DatapathImage, vips: VipSpec[], memo: DesiredMemo): { ms: number; image: DatapathImage; ops: number } {
  const t0 = performance.now();
  const { desired } = desiredState(vips, observations(image, vips), memo);
  const plan = planDatapath(image, desired, writer.capacities());
  const next = writer.apply(image, plan.ops, control);
  memo.programmed(tableArray(next, vips));
  return { ms: performance.now() - t0, image: next, ops: plan.ops.length };
}

/** The floor: n inner maps created and batch-written with 65537 slots each. */
function floor(n: number): number {
  const slots = Uint32Array.from({ length: SIZE }, (_, i) => i % BACKENDS);
  const keys = Uint32Array.from({ length: SIZE }, (_, i) => i);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const m = createMap({ type: MapType.ARRAY, name: 'floor', keySize: 4, valueSize: 4, maxEntries: SIZE, flags: MapFlags.INNER_MAP });
    m.updateBatch(new Uint8Array(keys.buffer), new Uint8Array(slots.buffer), SIZE);
    m.close();
  }
  return performance.now() - t0;
}

interface Row {
  vips: number;
  fromScratchMs: number;
  floorMs: number;
  ratio: number;
  sharedBackendLeavesMs: number;
  oneVipBackendLeavesMs: number;
}

const rows: Row[] = [];
for (const n of [1, 100, 1000]) {
  const obj = BpfObject.load(objectPath('xdp_lb.o'));
  try {
    const writer = new MapWriter(lbMaps(obj));
    const memo = new DesiredMemo();
    const fresh = program(writer, EMPTY_IMAGE, specs(n), memo);
    const shared = program(writer, fresh.image, specs(n, (_v, b) => b === 0), memo);
    const one = program(writer, shared.image, specs(n, (v, b) => b === 0 || (v === 0 && b === 1)), memo);
    const f = floor(n);
    rows.push({ vips: n, fromScratchMs: fresh.ms, floorMs: f, ratio: fresh.ms / f, sharedBackendLeavesMs: shared.ms, oneVipBackendLeavesMs: one.ms });
  } finally {
    obj.close();
  }
}

// Agent RSS at 1000 VIPs: the real process on a namespace interface.
async function agentRss(): Promise<{ rssMiB: number; readyMs: number }> {
  const ns = `xlb-bench-${process.pid}`;
  const dir = `/run/xdplb-bench-${process.pid}`;
  const pins = join(dir, 'bpf');
  mkdirSync(pins, { recursive: true });
  execFileSync('mount', ['-t', 'bpf', 'bpf', pins]);
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    const ip = (...a: string[]) => execFileSync('ip', ['-n', ns, ...a]);
    ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0');
    ip('link', 'set', 'eth0', 'up');
    ip('link', 'set', 'peer0', 'up');
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      `vips:\n${specs(1000)
        .map((v) => `  - name: ${v.name}\n    address: ${v.address}\n    ports: [{ port: 80 }]\n    backends:\n${v.backends.map((b) => `      - { address: ${b.address}, mac: "02:be:00:00:00:01" }`).join('\n')}`)
        .join('\n')}\n`,
    );
    const t0 = performance.now();
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, join(root, 'dist/src/cli/main.js'), 'agent', '--interface', 'eth0', '--config', config, '--pin-dir', pins, '--metrics-address', 'off'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const readyMs = await new Promise<number>((resolve, reject) => {
      let buf = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        if (buf.includes('Datapath attached and programmed')) resolve(performance.now() - t0);
      });
      void exited.then(() => reject(new Error(`agent exited before programming: ${buf.slice(-500)}`)));
    });
    await new Promise((r) => setTimeout(r, 2000));
    // The agent is the node process under `ip netns exec` (which execs it, keeping the pid).
    const rssMiB = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(child.pid)}/status`, 'utf8'))![1]) / 1024;
    child.kill('SIGTERM');
    await exited;
    return { rssMiB, readyMs };
  } finally {
    execFileSync('ip', ['netns', 'delete', ns]);
    execFileSync('umount', [pins]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const rss = await agentRss();

if (json) {
  console.log(JSON.stringify({ rows, agentAt1000Vips: rss }));
} else {
  console.log(`bench:agent (${BACKENDS} backends per VIP, ${SIZE} slots; floor = create + batch-write the same inner maps, nothing else)`);
  console.log('VIPs   from scratch      floor   ratio   shared backend leaves (all VIPs)   one VIP backend leaves');
  for (const r of rows) {
    console.log(
      `${String(r.vips).padStart(4)} ${r.fromScratchMs.toFixed(1).padStart(12)}ms ${r.floorMs.toFixed(1).padStart(9)}ms ${r.ratio.toFixed(2).padStart(6)}x ${r.sharedBackendLeavesMs.toFixed(1).padStart(22)}ms ${r.oneVipBackendLeavesMs.toFixed(1).padStart(24)}ms`,
    );
  }
  console.log(`agent process with 1000 VIPs: RSS ${rss.rssMiB.toFixed(0)} MiB, attached and programmed ${rss.readyMs.toFixed(0)} ms after start`);
}
