// flags.ts: how every subcommand reads its flags: node's parseArgs (strict: an
// unknown flag is an error), then one zod schema, frozen. Any problem becomes
// one BAD_FLAG error whose message names the flag; a subcommand turns it
// into one line and exit status 2 (`commandFlags`).
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import type { z } from 'zod';
import { ErrorCodes, isXdplbError, XdplbError } from '../core/errors.js';

/** The flags, or null when --help/-h was given. */
export function parseFlags<S extends z.ZodType>(argv: readonly string[], options: ParseArgsOptionsConfig, schema: S, fill: (values: Record<string, unknown>) => Record<string, unknown> = (v) => v): Readonly<z.infer<S>> | null {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new XdplbError(ErrorCodes.BAD_FLAG, (e as Error).message, { cause: e });
  }
  if (values.help === true) return null;
  const parsed = schema.safeParse(fill(values));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const message = issue.message.includes('--') || issue.path.length === 0 ? issue.message : `--${issue.path.join('.')}: ${issue.message}`;
    throw new XdplbError(ErrorCodes.BAD_FLAG, message);
  }
  return Object.freeze(parsed.data) as Readonly<z.infer<S>>;
}

/** parseArgs options: every name a string flag, except those given as booleans. */
export function flagOptions(strings: readonly string[], booleans: readonly string[] = []): ParseArgsOptionsConfig {
  return Object.fromEntries([...strings.map((n) => [n, { type: 'string' as const }]), ...booleans.map((n) => [n, { type: 'boolean' as const }])]);
}

/**
 * A subcommand's flags, or the exit status it must stop with: 0 after
 * printing its usage for --help, 2 after one line naming the bad flag.
 */
export function commandFlags<T extends object>(command: string, usage: string, io: { out(line: string): void; err(line: string): void }, parse: () => T | null): T | number {
  let flags: T | null;
  try {
    flags = parse();
  } catch (e) {
    if (!isXdplbError(e)) throw e;
    io.err(`xdplb ${command}: ${e.message}`);
    return 2;
  }
  if (flags === null) {
    io.out(usage);
    return 0;
  }
  return flags;
}
