// commands.ts: the `xdplb` command table. Dispatches to one subcommand; each
// subcommand parses its own flags and returns an exit status. `demo` is
// loaded from the lab when present (a checkout), never imported statically.
import { EXIT_USAGE, type CliIo } from './io.js';
import { runAgent } from '../agent/main.js';
import { runOperator } from '../operator/main.js';
import { runDecap } from './decap.js';
import { runRing } from './ring.js';
import { runSimulate } from './simulate.js';

type Subcommand = (argv: readonly string[], io: CliIo) => number | Promise<number>;

/**
 * `xdplb demo` lives in the lab (lab/demo), built beside the product from a
 * checkout and never part of the image: loaded only when asked for, and
 * refused with one line where it is absent.
 */
async function runDemo(argv: readonly string[], io: CliIo): Promise<number> {
  let lab: { runDemoCommand: Subcommand };
  try {
    lab = (await import(new URL('../../lab/demo/cli.js', import.meta.url).href)) as { runDemoCommand: Subcommand };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    io.err('xdplb demo: runs from a checkout of the repository (npm start), not from the image: the lab is not installed here');
    return EXIT_USAGE;
  }
  return lab.runDemoCommand(argv, io);
}

const subcommands: Record<string, { run: Subcommand; summary: string }> = {
  agent: { run: runAgent, summary: 'run the node agent: load, attach and program the XDP load balancer (root)' },
  demo: { run: runDemo, summary: 'run the whole system live on this machine: control plane, two nodes, traffic, failures (root)' },
  decap: { run: runDecap, summary: 'attach the backend decapsulation program for ipip VIPs (root)' },
  operator: { run: runOperator, summary: 'run the operator: decide backends, publish tables, report status (Kubernetes)' },
  ring: { run: runRing, summary: 'compute a Maglev lookup table or its minimal-disruption successor' },
  simulate: { run: runSimulate, summary: 'run a pcap through the real XDP program programmed from a config (root)' },
};

const USAGE = `usage: xdplb <command> [flags]

commands:
${Object.entries(subcommands)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}

Run "xdplb <command> --help" for a command's flags.`;

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(USAGE);
    return name === undefined ? EXIT_USAGE : 0;
  }
  const sub = subcommands[name];
  if (sub === undefined) {
    io.err(`xdplb: unknown command "${name}"; commands: ${Object.keys(subcommands).join(', ')}`);
    return EXIT_USAGE;
  }
  return sub.run(rest, io);
}
