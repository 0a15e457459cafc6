// demo.ts: `xdplb demo` flags and output: the live view on a terminal (or
// event lines when piped), a summary at the end, --json for scripts, and the
// HTML report. The run itself is lab/demo/run.ts; the product CLI loads
// this module only from a checkout (src/cli/commands.ts).
import { resolve } from 'node:path';
import { z } from 'zod';
import { isXdplbError } from '../../src/core/errors.js';
import { pct } from './model.js';
import { runDemo } from './run.js';
import { parseFlags } from '../../src/config/flags.js';
import { EXIT_USAGE, type CliIo } from '../../src/cli/io.js';

export const DEMO_USAGE = `usage: xdplb demo [flags]   (root: it creates network namespaces and loads XDP programs)

Runs the whole system on this machine: a real kube-apiserver and etcd (built
from source on the first run), two operator replicas, two load-balancer nodes
running the XDP datapath behind an ECMP route, backends serving HTTP, and a
client. Applies a VIP with kubectl, kills a backend, adds one, and shows it live.

  --duration SECONDS   how long the traffic runs (default 60, at least 20)
  --rate N             new connections per second (default 100)
  --flows N            established connections held to measure the scale-out (default 400)
  --mode MODE          gue (default: backends decapsulate and pass on what they do not know, so the
                       scale-out breaks no connection), ipip (backends decapsulate) or l2dsr
  --report FILE        the HTML report (default xdplb-demo-report.html; "off" for none)
  --json               print the measurements as one JSON object instead of the live view`;

const schema = z.object({
  duration: z.coerce.number().int().min(20, { message: '--duration must be at least 20 seconds' }).max(3600).default(60),
  rate: z.coerce.number().int().min(1).max(1000).default(100),
  flows: z.coerce.number().int().min(10).max(2000).default(400),
  mode: z.enum(['gue', 'ipip', 'l2dsr']).default('gue'),
  report: z.string().min(1).default('xdplb-demo-report.html'),
  json: z.boolean().default(false),
});

export async function runDemoCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let flags: z.infer<typeof schema> | null;
  try {
    flags = parseFlags(argv, { duration: { type: 'string' }, rate: { type: 'string' }, flows: { type: 'string' }, mode: { type: 'string' }, report: { type: 'string' }, json: { type: 'boolean' } }, schema);
  } catch (e) {
    if (isXdplbError(e)) {
      io.err(`xdplb demo: ${e.message}`);
      return EXIT_USAGE;
    }
    throw e;
  }
  if (flags === null) {
    io.out(DEMO_USAGE);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    io.err('xdplb demo: run as root: it creates network namespaces, mounts bpffs and loads XDP programs');
    return EXIT_USAGE;
  }
  const live = !flags.json && process.stdout.isTTY === true;
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let first = true;
  try {
    const summary = await runDemo({
      duration: flags.duration,
      rate: flags.rate,
      mode: flags.mode,
      flows: flags.flows,
      reportPath: flags.report === 'off' ? null : resolve(flags.report),
      live,
      color: live,
      width: () => process.stdout.columns ?? 100,
      progress: (l) => io.err(l),
      draw: (screen) => {
        process.stdout.write(`${first ? '\x1b[2J' : ''}\x1b[H${screen}\n\x1b[J`);
        first = false;
      },
      writeFile: (path, text) => io.writeFile(path, text),
      signal: abort.signal,
    });
    if (flags.json) {
      io.out(JSON.stringify(summary));
    } else {
      io.out('');
      io.out(`xdplb demo: ${summary.complete ? 'done' : 'stopped early'} after ${summary.durationSeconds.toFixed(0)} s`);
      io.out(`  failover (backend killed -> node routes around it in its datapath): ${Object.entries(summary.failoverMs).map(([n, ms]) => `${n} ${ms === null ? 'n/a' : `${ms} ms`}`).join(', ')}; new connections failed meanwhile: ${summary.failedDuringFailover ?? 'n/a'}`);
      io.out(`  scale-out: ${summary.broken ?? 'n/a'} of ${summary.flowsMeasured} established flows broke (${pct(summary.movedSlots)} of slots moved; theoretical minimum ${pct(summary.minimum)})`);
      io.out(`  new connections: ${summary.requests.ok} ok, ${summary.requests.failed} failed`);
      if (summary.report !== null) io.out(`  report: ${summary.report} (open it in a browser)`);
    }
    return 0;
  } catch (e) {
    io.err(`xdplb demo: ${(e as Error).message}`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
