// simulate.ts: `xdplb simulate`, run a capture through the real XDP program
// (BPF_PROG_TEST_RUN) programmed from a standalone config, the way the agent
// would program it, and report what happens to every packet.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { isEvent, type ReasonName } from '../bpf/abi.js';
import { lbMaps, readCounter, readReasons, reasonDelta, checkLbAbi } from '../bpf/datapath.js';
import { BpfObject, verdictName, type Verdict } from '../bpf/loader.js';
import { MapWriter } from '../bpf/map-writer.js';
import { objectPath } from '../bpf/objects.js';
import { parseStandaloneConfig, staticMacs, vipSpecs } from '../config/standalone.js';
import { EMPTY_IMAGE, planDatapath } from '../core/datapath-plan.js';
import { desiredState } from '../core/desired-state.js';
import { ErrorCodes, XdplbError, isXdplbError } from '../core/errors.js';
import { LINKTYPE_ETHERNET, parsePcap, writePcap, type PcapPacket } from '../core/pcap.js';
import { parseFlags } from '../config/flags.js';
import { EXIT_USAGE, type CliIo } from './io.js';

export const SIMULATE_USAGE = `usage: xdplb simulate --config FILE --pcap IN [--out OUT.pcap] [--json] [--src-mac MAC] [--mtu N]

Loads the XDP load balancer (needs root), programs it with the VIPs and
backends of a standalone config file (every backend healthy; a backend without
a static "mac" gets a placeholder 02:... MAC derived from its address), runs
every packet of an Ethernet pcap through it with BPF_PROG_TEST_RUN, and prints
one line per packet (verdict, VIP, backend, reason) and totals. A frame shorter
than an Ethernet header (14 bytes) cannot be run (the kernel refuses it); it is
reported as PASS_MALFORMED, what the program does with any frame it cannot
parse, and marked "not run".

  --out FILE      write the packets the program transmits or passes (dropped ones are left out)
  --json          print one JSON object instead
  --src-mac MAC   the load balancer's own MAC (default 02:00:00:00:00:01)
  --mtu N         MTU toward backends (default: the config's, else 1500; 0 disables the check)`;

const flagsSchema = z.object({
  config: z.string({ message: '--config FILE is required' }).min(1),
  pcap: z.string({ message: '--pcap FILE is required' }).min(1),
  out: z.string().optional(),
  json: z.boolean().default(false),
  'src-mac': z
    .string()
    .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, { message: '--src-mac must be a MAC address' })
    .default('02:00:00:00:00:01'),
  mtu: z
    .string()
    .regex(/^\d+$/, { message: '--mtu must be an integer' })
    .transform(Number)
    .refine((n) => n === 0 || (n >= 1280 && n <= 65535), { message: '--mtu must be 0 or 1280..65535' })
    .optional(),
});

interface PacketReport {
  n: number;
  verdict: Verdict;
  vip: string | null;
  backend: string | null;
  reason: ReasonName | null;
  events: ReasonName[];
  /** false: the frame never reached the program (shorter than TEST_RUN_MIN_FRAME). */
  ran: boolean;
}

/** BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet header with
 * EINVAL (no driver delivers such a frame). simulate reports such a frame as
 * the program treats every frame it cannot parse: passed, PASS_MALFORMED. */
const TEST_RUN_MIN_FRAME = 14;

function notRunReport(n: number): PacketReport {
  return { n, verdict: 'PASS', vip: null, backend: null, reason: 'PASS_MALFORMED', events: [], ran: false };
}

function placeholderMac(address: string): string {
  const h = createHash('sha256').update(address).digest();
  return ['02', ...Array.from(h.subarray(0, 5), (b) => b.toString(16).padStart(2, '0'))].join(':');
}

function readInput(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new XdplbError(ErrorCodes.IO, `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export function runSimulate(argv: readonly string[], io: CliIo): number {
  try {
    const flags = parseFlags(
      argv,
      { config: { type: 'string' }, pcap: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' }, 'src-mac': { type: 'string' }, mtu: { type: 'string' } },
      flagsSchema,
    );
    if (flags === null) {
      io.out(SIMULATE_USAGE);
      return 0;
    }

    const config = parseStandaloneConfig(readInput(flags.config, 'config').toString('utf8'), flags.config);
    const capture = parsePcap(readInput(flags.pcap, 'capture'));
    if (capture.linkType !== LINKTYPE_ETHERNET) {
      throw new XdplbError(ErrorCodes.BAD_PCAP, `${flags.pcap} has link type ${capture.linkType}; the XDP program sees Ethernet frames (link type 1)`);
    }

    let obj: BpfObject;
    try {
      obj = BpfObject.load(objectPath('xdp_lb.o'));
    } catch (e) {
      if (isXdplbError(e, ErrorCodes.NO_PRIVILEGE)) {
        throw new XdplbError(ErrorCodes.NO_PRIVILEGE, 'needs root (CAP_BPF and CAP_NET_ADMIN) to load the XDP program into the kernel', { cause: e });
      }
      throw e;
    }
    try {
      const maps = lbMaps(obj);
      checkLbAbi(maps);
      const writer = new MapWriter(maps);
      const statics = staticMacs(config);
      const specs = vipSpecs(config);
      const { desired } = desiredState(specs, {
        healthy: () => true,
        mac: (a) => ({ ok: true, mac: statics.get(a) ?? placeholderMac(a) }),
        currentTable: () => undefined,
      });
      const plan = planDatapath(EMPTY_IMAGE, desired, writer.capacities());
      writer.apply(EMPTY_IMAGE, plan.ops, {
        srcMac: flags['src-mac'],
        mtu: flags.mtu ?? config.mtu ?? 1500,
        v4SrcPrefix: config.ipipSourceV4,
        v6SrcPrefix: config.ipipSourceV6,
      });
      const vipNames = new Map([...plan.vipIds].map(([name, ids]) => [ids.vipId, name]));
      const backendNames = new Map([...plan.backendIndex].map(([address, index]) => [index, address]));
      const prog = obj.program('xdp_lb');

      const reports: PacketReport[] = [];
      const outputs: PcapPacket[] = [];
      const vipCount = (): Map<number, bigint> => new Map([...vipNames.keys()].map((id) => [id, readCounter(maps.vipStats, id).packets]));
      const backendCount = (): Map<number, bigint> => new Map([...backendNames.keys()].map((i) => [i, readCounter(maps.backendStats, i).packets]));
      capture.packets.forEach((pkt, i) => {
        if (pkt.data.length < TEST_RUN_MIN_FRAME) {
          reports.push(notRunReport(i + 1));
          outputs.push({ tsSec: pkt.tsSec, tsFrac: pkt.tsFrac, data: pkt.data, origLen: pkt.origLen });
          return;
        }
        const reasons0 = readReasons(maps.reasonStats);
        const vips0 = vipCount();
        const backends0 = backendCount();
        const r = prog.testRun({ data: pkt.data, repeat: 1, dataOutSize: pkt.data.length + 2048 });
        const delta = reasonDelta(reasons0, readReasons(maps.reasonStats));
        const moved = <K>(before: Map<K, bigint>, after: Map<K, bigint>): K | undefined => [...after].find(([k, v]) => v !== before.get(k))?.[0];
        const vipId = moved(vips0, vipCount());
        const backendIndex = moved(backends0, backendCount());
        const names = Object.keys(delta) as ReasonName[];
        const report: PacketReport = {
          n: i + 1,
          verdict: verdictName(r.retval),
          vip: vipId === undefined ? null : vipNames.get(vipId) ?? null,
          backend: backendIndex === undefined ? null : backendNames.get(backendIndex) ?? null,
          reason: names.find((n) => !isEvent(n)) ?? null,
          events: names.filter((n) => isEvent(n)),
          ran: true,
        };
        reports.push(report);
        if (report.verdict === 'TX' || report.verdict === 'PASS') {
          outputs.push({ tsSec: pkt.tsSec, tsFrac: pkt.tsFrac, data: r.data, origLen: r.data.length });
        }
      });

      if (flags.out !== undefined) {
        try {
          io.writeFile(flags.out, writePcap({ ...capture, snapLen: Math.max(capture.snapLen, 65535), packets: outputs }));
        } catch (e) {
          throw new XdplbError(ErrorCodes.IO, `cannot write --out ${flags.out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      }
      const tally = <T extends string>(xs: (T | null)[]): Record<string, number> => {
        const out: Record<string, number> = {};
        for (const x of xs) if (x !== null) out[x] = (out[x] ?? 0) + 1;
        return out;
      };
      const totals = {
        packets: reports.length,
        verdicts: tally(reports.map((r) => r.verdict)),
        reasons: tally(reports.map((r) => r.reason)),
        events: tally(reports.flatMap((r) => r.events)),
        vips: tally(reports.map((r) => r.vip)),
        backends: tally(reports.map((r) => r.backend)),
        notRun: reports.filter((r) => !r.ran).length,
      };
      if (flags.json) {
        io.out(JSON.stringify({ packets: reports, totals }));
      } else {
        for (const r of reports) {
          const where = r.vip === null ? '-' : `${r.vip}${r.backend === null ? '' : ` -> ${r.backend}`}`;
          const note = r.ran ? (r.events.length > 0 ? ` (${r.events.join(', ')})` : '') : ` (not run: ${capture.packets[r.n - 1]!.data.length}-byte frame, shorter than an Ethernet header)`;
          io.out(`#${r.n} ${r.verdict.padEnd(4)} ${where.padEnd(28)} ${r.reason ?? '-'}${note}`);
        }
        const fmt = (o: Record<string, number>): string => Object.entries(o).map(([k, v]) => `${k}=${v}`).join(' ') || '-';
        io.out(`total ${totals.packets} packets: ${fmt(totals.verdicts)}`);
        io.out(`reasons: ${fmt(totals.reasons)}`);
        if (Object.keys(totals.events).length > 0) io.out(`events: ${fmt(totals.events)}`);
        if (totals.notRun > 0) {
          io.out(`not run: ${totals.notRun} frame${totals.notRun === 1 ? '' : 's'} shorter than ${TEST_RUN_MIN_FRAME} bytes (BPF_PROG_TEST_RUN refuses them), counted PASS_MALFORMED`);
        }
        io.out(`per VIP: ${fmt(totals.vips)}`);
        io.out(`per backend: ${fmt(totals.backends)}`);
      }
      return 0;
    } finally {
      obj.close();
    }
  } catch (e) {
    if (isXdplbError(e)) {
      io.err(`xdplb simulate: ${e.message.split('\n').join('\n  ')}`);
      return EXIT_USAGE;
    }
    throw e;
  }
}
