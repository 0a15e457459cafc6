// io.ts: what a subcommand needs from the outside world, passed in so tests can
// run subcommands in-process. `realIo` is the process's own.
import { readFileSync, writeFileSync } from 'node:fs';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  readFile(path: string): string;
  writeFile(path: string, content: string | Uint8Array): void;
  /** Monotonic milliseconds, for timing. */
  now(): number;
}

export const realIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  readFile: (path) => readFileSync(path, 'utf8'),
  writeFile: (path, content) => writeFileSync(path, content),
  now: () => performance.now(),
};

/** Exit status for bad input (flags, files): the one-line error names the problem. */
export const EXIT_USAGE = 2;
