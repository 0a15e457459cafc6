// netns.ts: network namespaces, links and processes for tests, created with
// iproute2 and always torn down: every name carries the creating process's pid
// (xlb<pid>-<role>), teardown runs in afterAll and at process exit, and a
// sweep at start removes what a crashed earlier run (a dead pid) left behind.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { pidAlive } from './process.js';

const PREFIX = `xlb${process.pid}-`;

export function sh(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Deletes namespaces left by test processes that are no longer running. */
export function sweepStaleNamespaces(): void {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^xlb(\d+)-/.exec(name);
    if (m !== null && !pidAlive(Number(m[1]))) {
      try {
        sh('ip', ['netns', 'pids', name])
          .split('\n')
          .filter(Boolean)
          .forEach((pid) => {
            try {
              process.kill(Number(pid), 'SIGKILL');
            } catch {
              /* already gone */
            }
          });
        sh('ip', ['netns', 'delete', name]);
      } catch {
        /* raced with another sweeper */
      }
    }
  }
}

export class Netns {
  readonly name: string;
  readonly #children = new Set<ChildProcess>();

  constructor(readonly role: string) {
    this.name = `${PREFIX}${role}`;
    sh('ip', ['netns', 'add', this.name]);
    this.run('ip', ['link', 'set', 'lo', 'up']);
  }

  /** Runs a command inside the namespace and returns its stdout. */
  run(cmd: string, args: readonly string[]): string {
    return sh('ip', ['netns', 'exec', this.name, cmd, ...args]);
  }

  ip(...args: string[]): string {
    return this.run('ip', args);
  }

  sysctl(key: string, value: string | number): void {
    this.run('sysctl', ['-qw', `${key}=${value}`]);
  }

  /** Starts a long-running process inside the namespace; killed at teardown. */
  spawn(cmd: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Kills every process in the namespace (ours and any they started), then deletes it. */
  destroy(): void {
    for (const c of this.#children) c.kill('SIGKILL');
    try {
      for (const pid of sh('ip', ['netns', 'pids', this.name]).split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      sh('ip', ['netns', 'delete', this.name]);
    } catch {
      /* already deleted */
    }
  }
}

/** A set of namespaces torn down together, also at process exit. */
export class Lab {
  readonly #namespaces: Netns[] = [];
  readonly #onExit = (): void => this.destroy();

  constructor() {
    sweepStaleNamespaces();
    process.once('exit', this.#onExit);
  }

  ns(role: string): Netns {
    const n = new Netns(role);
    this.#namespaces.push(n);
    return n;
  }

  /**
   * A veth pair from `a` (named aName) to `b` (named bName), both up. With
   * `bridge`, b's end is enslaved to that bridge inside b.
   */
  link(a: Netns, aName: string, b: Netns, bName: string, bridge?: string): void {
    const tmpA = `t${process.pid % 100000}a${this.#namespaces.length}${Math.floor(Math.random() * 1e4)}`.slice(0, 15);
    const tmpB = `${tmpA.slice(0, 13)}b`;
    sh('ip', ['link', 'add', tmpA, 'type', 'veth', 'peer', 'name', tmpB]);
    sh('ip', ['link', 'set', tmpA, 'netns', a.name]);
    sh('ip', ['link', 'set', tmpB, 'netns', b.name]);
    a.ip('link', 'set', tmpA, 'name', aName);
    b.ip('link', 'set', tmpB, 'name', bName);
    if (bridge !== undefined) b.ip('link', 'set', bName, 'master', bridge);
    a.ip('link', 'set', aName, 'up');
    b.ip('link', 'set', bName, 'up');
  }

  destroy(): void {
    while (this.#namespaces.length > 0) this.#namespaces.pop()!.destroy();
    process.removeListener('exit', this.#onExit);
  }
}

/** MAC address of an interface inside a namespace. */
export function macOf(ns: Netns, ifname: string): string {
  const [info] = JSON.parse(ns.ip('-j', 'link', 'show', ifname)) as { address: string }[];
  return info!.address;
}
