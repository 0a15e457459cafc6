#!/usr/bin/env node
// main.ts: the `xdplb` executable (package.json bin): runs one subcommand with
// the process's own arguments and I/O.
import { main } from './commands.js';
import { realIo } from './io.js';

process.exitCode = await main(process.argv.slice(2), realIo);
