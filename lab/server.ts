// server.ts: the processes of the lab's real Kubernetes pieces (control plane,
// node): a command run to completion with its output, a long-running server
// logging to a file and stopped with SIGTERM then SIGKILL, free loopback
// ports, and the processes whose command line names a directory (what a
// harness kills when it cleans up a temp dir).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface CommandOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Resolve with a non-zero exitCode instead of throwing. */
  allowFailure?: boolean;
  /** Kill the command after this long (default 60 s). */
  timeoutMs?: number;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  stdio?: 'pipe' | 'inherit-stderr';
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', opts.stdio === 'inherit-stderr' ? 'inherit' : 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            stderr += `\n[killed after ${opts.timeoutMs} ms]`;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.on('error', (e) => {
      if (timer !== undefined) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer);
      resolvePromise({ stdout, stderr, exitCode: code ?? (signal !== null ? 128 : 1) });
    });
    child.stdin?.on('error', () => {}); // the command may exit before reading its input
    child.stdin?.end(opts.input ?? '');
  });
}

/** Pids of processes whose command line mentions a path inside `dir`. */
export function processesUsing(dir: string): number[] {
  const needle = Buffer.from(`${dir}/`);
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`).includes(needle)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export class Server {
  readonly name: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly exited: Promise<void>;

  constructor(name: string, bin: string, args: readonly string[], logFile: string) {
    this.name = name;
    this.logFile = logFile;
    const fd = openSync(logFile, 'a');
    try {
      this.child = spawn(bin, args, { stdio: ['ignore', fd, fd], env: process.env });
    } finally {
      closeSync(fd);
    }
    this.exited = new Promise((res) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        res();
      });
      this.child.on('error', (e) => {
        this.exit = { code: null, signal: null };
        void writeFile(logFile, `\nspawn error: ${e.message}\n`, { flag: 'a' });
        res();
      });
    });
  }

  get running(): boolean {
    return this.exit === null;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs: number): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async logTail(lines = 40): Promise<string> {
    try {
      return (await readFile(this.logFile, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((res, rej) => {
      const s = createServer();
      s.on('error', rej);
      s.listen(0, '127.0.0.1', () => res(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  return ports;
}
