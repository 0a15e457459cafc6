// simulate.test.ts: `xdplb simulate` end to end as a process: a capture built
// here runs through the real XDP program; every packet's verdict, VIP,
// backend and reason are reported, the output capture holds the transformed
// frames, and bad input or missing privilege exits 2 with one clear line.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ETH_P_IP, ethernet, ipv4, PROTO_TCP, PROTO_UDP, tcp, udp } from '../../lab/packet.js';
import { LINKTYPE_ETHERNET, parsePcap, writePcap } from '../../src/core/pcap.js';

const root = join(import.meta.dirname, '../..');
const bin = join(root, 'dist/src/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'xdplb-sim-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LB_MAC = '02:00:00:00:00:01';
const config = join(dir, 'agent.yaml');
writeFileSync(
  config,
  `vips:
  - name: web
    address: 192.0.2.10
    mode: l2dsr
    ports: [{ port: 80 }]
    backends:
      - { address: 10.0.0.1, mac: "02:be:00:00:00:01" }
      - { address: 10.0.0.2, mac: "02:be:00:00:00:02" }
  - name: dns
    address: 192.0.2.53
    ports: [{ port: 53, protocol: UDP }]
    backends: []
`,
);

const syn = (client: string, sport: number) =>
  ethernet({ dst: LB_MAC, src: '02:cc:00:00:00:01', type: ETH_P_IP }, ipv4({ src: client, dst: '192.0.2.10', proto: PROTO_TCP }, tcp(client, '192.0.2.10', { sport, dport: 80 })));
const frames = [
  syn('198.51.100.7', 40000),
  syn('198.51.100.8', 40001),
  ethernet({ dst: LB_MAC, src: '02:cc:00:00:00:01', type: ETH_P_IP }, ipv4({ src: '198.51.100.7', dst: '203.0.113.1', proto: PROTO_TCP }, tcp('198.51.100.7', '203.0.113.1', { sport: 1, dport: 22 }))),
  ethernet({ dst: LB_MAC, src: '02:cc:00:00:00:01', type: ETH_P_IP }, ipv4({ src: '198.51.100.7', dst: '192.0.2.53', proto: PROTO_UDP }, udp('198.51.100.7', '192.0.2.53', { sport: 5353, dport: 53 }))),
  ethernet({ dst: 'ff:ff:ff:ff:ff:ff', src: '02:cc:00:00:00:01', type: 0x0806 }, new Uint8Array(28)),
  // A VIP packet whose TCP header is cut after 6 bytes (IP lengths consistent): malformed, dropped.
  ethernet({ dst: LB_MAC, src: '02:cc:00:00:00:01', type: ETH_P_IP }, ipv4({ src: '198.51.100.9', dst: '192.0.2.10', proto: PROTO_TCP }, tcp('198.51.100.9', '192.0.2.10', { sport: 40002, dport: 80 }).subarray(0, 6))),
];
const pcapIn = join(dir, 'in.pcap');
writeFileSync(pcapIn, writePcap({ nanosecond: false, linkType: LINKTYPE_ETHERNET, snapLen: 65535, packets: frames.map((data, i) => ({ tsSec: 100 + i, tsFrac: 0, data, origLen: data.length })) }));

function simulate(...args: string[]) {
  return spawnSync(process.execPath, [bin, 'simulate', ...args], { encoding: 'utf8' });
}

describe('xdplb simulate', () => {
  it('reports every packet and writes the transformed frames', () => {
    const out = join(dir, 'out.pcap');
    const r = simulate('--config', config, '--pcap', pcapIn, '--out', out, '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as { packets: { verdict: string; vip: string | null; backend: string | null; reason: string }[]; totals: { packets: number } };
    expect(report.packets.map((p) => [p.verdict, p.vip, p.reason])).toEqual([
      ['TX', 'web', 'FWD_L2DSR'],
      ['TX', 'web', 'FWD_L2DSR'],
      ['PASS', null, 'PASS_NOT_VIP'],
      ['DROP', 'dns', 'DROP_NO_BACKEND'],
      ['PASS', null, 'PASS_NOT_IP'],
      ['DROP', 'web', 'DROP_MALFORMED'],
    ]);
    expect(report.packets.slice(0, 2).every((p) => p.backend === '10.0.0.1' || p.backend === '10.0.0.2')).toBe(true);
    expect(report.totals.packets).toBe(6);

    const written = parsePcap(readFileSync(out));
    expect(written.packets).toHaveLength(4); // 2 TX + 2 PASS; drops left out
    const first = written.packets[0]!.data;
    const mac = Array.from(first.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
    expect(mac).toBe(report.packets[0]!.backend === '10.0.0.1' ? '02:be:00:00:00:01' : '02:be:00:00:00:02');
    expect(Buffer.from(written.packets[2]!.data).equals(Buffer.from(frames[2]!))).toBe(true);
    expect(written.packets.map((p) => p.tsSec)).toEqual([100, 101, 102, 104]);
  });

  it('prints a line per packet and totals', () => {
    const r = simulate('--config', config, '--pcap', pcapIn);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^#1 TX\s+web -> 10\.0\.0\.[12]\s+FWD_L2DSR$/);
    expect(lines).toContain('total 6 packets: TX=2 PASS=2 DROP=2');
  });

  it.each([
    [['--pcap', 'x'], /--config FILE is required/],
    [['--config', '/nonexistent.yaml', '--pcap', 'x'], /cannot read config/],
    [['--config', 'CONFIG', '--pcap', '/nonexistent.pcap'], /cannot read capture/],
    [['--config', 'CONFIG', '--pcap', 'CONFIG'], /not a pcap file/],
    [['--config', 'CONFIG', '--pcap', 'PCAP', '--mtu', '99'], /--mtu must be 0 or 1280/],
  ])('exits 2 naming the problem: %j', (args, message) => {
    const r = simulate(...(args as string[]).map((a) => (a === 'CONFIG' ? config : a === 'PCAP' ? pcapIn : a)));
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  // Regression (issue 11, item 11): one frame shorter than an Ethernet header
  // (BPF_PROG_TEST_RUN refuses it with EINVAL) made the whole run exit 2.
  it('counts a frame shorter than 14 bytes as malformed and runs the others', () => {
    const short = Uint8Array.of(0x02, 0, 0, 0, 0, 1, 0x02, 0xcc, 0, 0); // 10 bytes: cut inside the source MAC
    const mixed = [frames[0]!, short, frames[2]!, new Uint8Array(0), frames[1]!];
    const pcap = join(dir, 'short.pcap');
    writeFileSync(pcap, writePcap({ nanosecond: false, linkType: LINKTYPE_ETHERNET, snapLen: 65535, packets: mixed.map((data, i) => ({ tsSec: 200 + i, tsFrac: 0, data, origLen: data.length })) }));
    const out = join(dir, 'short-out.pcap');

    const r = simulate('--config', config, '--pcap', pcap, '--out', out, '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as {
      packets: { n: number; verdict: string; vip: string | null; reason: string; ran: boolean }[];
      totals: { packets: number; verdicts: Record<string, number>; reasons: Record<string, number>; notRun: number };
    };
    expect(report.packets.map((p) => [p.n, p.verdict, p.vip, p.reason, p.ran])).toEqual([
      [1, 'TX', 'web', 'FWD_L2DSR', true],
      [2, 'PASS', null, 'PASS_MALFORMED', false],
      [3, 'PASS', null, 'PASS_NOT_VIP', true],
      [4, 'PASS', null, 'PASS_MALFORMED', false],
      [5, 'TX', 'web', 'FWD_L2DSR', true],
    ]);
    expect(report.totals.packets).toBe(5);
    expect(report.totals.verdicts).toEqual({ TX: 2, PASS: 3 });
    expect(report.totals.reasons).toEqual({ FWD_L2DSR: 2, PASS_MALFORMED: 2, PASS_NOT_VIP: 1 });
    expect(report.totals.notRun).toBe(2);
    // passed frames go to --out as they came, the short ones too
    const written = parsePcap(readFileSync(out));
    expect(written.packets.map((p) => p.tsSec)).toEqual([200, 201, 202, 203, 204]);
    expect(Buffer.from(written.packets[1]!.data).equals(Buffer.from(short))).toBe(true);

    const text = simulate('--config', config, '--pcap', pcap);
    expect(text.status).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[1]).toMatch(/^#2 PASS\s+-\s+PASS_MALFORMED \(not run: 10-byte frame, shorter than an Ethernet header\)$/);
    expect(lines).toContain('total 5 packets: TX=2 PASS=3');
    expect(lines).toContain('reasons: FWD_L2DSR=2 PASS_MALFORMED=2 PASS_NOT_VIP=1');
    expect(lines).toContain('not run: 2 frames shorter than 14 bytes (BPF_PROG_TEST_RUN refuses them), counted PASS_MALFORMED');
  });

  it('says it needs root when run without privileges', () => {
    // setpriv drops to nobody with no capabilities: a real missing privilege.
    for (const p of [dir, config, pcapIn]) chmodSync(p, p === dir ? 0o755 : 0o644);
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, bin, 'simulate', '--config', config, '--pcap', pcapIn], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('xdplb simulate: needs root (CAP_BPF and CAP_NET_ADMIN) to load the XDP program into the kernel');
  });

  it('refuses an invalid config listing every problem, before touching the kernel', () => {
    const badConfig = join(dir, 'bad.yaml');
    writeFileSync(badConfig, 'vips:\n  - name: x\n    address: nope\n    ports: []\n    backends: []\n');
    const r = simulate('--config', badConfig, '--pcap', pcapIn);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/is invalid \(2 problems\)/);
  });
});
