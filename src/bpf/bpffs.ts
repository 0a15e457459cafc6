// bpffs.ts: the BPF filesystem pins live on. The agent and `xdplb decap`
// mount it at /sys/fs/bpf when the host has not (systemd does; a bare node
// may not), and refuse a pin directory that is not on one.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ErrorCodes, XdplbError } from '../core/errors.js';

/** Mounts bpffs at /sys/fs/bpf when the pin directory is not on one. */
export function ensureBpffs(pinDir: string): void {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'bpf')
    .map((f) => f[1]!);
  if (mounts.some((m) => pinDir === m || pinDir.startsWith(`${m}/`))) return;
  if (!pinDir.startsWith('/sys/fs/bpf')) {
    throw new XdplbError(ErrorCodes.BAD_FLAG, `--pin-dir ${pinDir} is not on a bpf filesystem`);
  }
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf'], { stdio: 'pipe' });
  } catch (e) {
    throw new XdplbError(ErrorCodes.NO_PRIVILEGE, `could not mount bpffs at /sys/fs/bpf: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`);
  }
}
