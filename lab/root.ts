// root.ts: the repository checkout the lab runs from. The lab (namespaces, a
// local control plane, the demo) needs the checkout's scripts, BPF objects and
// helper programs, and runs both from the TypeScript sources (tests) and from
// dist/lab (the `xdplb demo` command): the root is the nearest directory
// above this file holding xdplb's package.json.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'xdplb') return dir;
    if (dirname(dir) === dir) throw new Error(`no xdplb checkout above ${from}: the lab runs from a checkout of the repository`);
  }
}

export const ROOT = findRoot(import.meta.dirname);
/** The built CLI, as the agents and operators of the lab run it. */
export const XDPLB = join(ROOT, 'dist/src/cli/main.js');
/** Helper programs run inside namespaces: HTTP backend, load client, TCP forwarder. */
export const LAB_BIN = join(ROOT, 'lab/bin');
