// lb-topology.ts: a load-balancer test network in namespaces. A switch
// namespace holds a bridge; a client, one load-balancer node and N backends
// hang off it by veth. Backends run test/support/http-server.mjs, hold the VIP
// on lo (l2dsr) and can run the decap program (ipip). The agent runs as a
// process inside the node's namespace, as a hostNetwork DaemonSet pod would,
// with its pins on a bpffs mounted for this topology (a hostPath in a cluster).
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, macOf, sh, type Netns } from './netns.js';

export const ROOT = join(import.meta.dirname, '../..');
export const XDPLB = join(ROOT, 'dist/src/cli/main.js');
const SUPPORT = join(ROOT, 'test/support');

export interface BackendNode {
  readonly name: string;
  readonly ns: Netns;
  readonly address: string;
  readonly mac: string;
  server: ChildProcess | null;
}

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[];
  /** Resolves with the first log line matching. */
  waitForLog(match: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
}

export interface LoadResult {
  ok: number;
  failed: number;
  byBackend: Record<string, number>;
  errors: Record<string, number>;
  trace?: { localPort: number; answer: string }[];
  /** Connections used (--keepalive). */
  connections?: number;
  ms: number;
}

export class LbTopology {
  readonly lab = new Lab();
  readonly sw: Netns;
  readonly client: Netns;
  readonly lb: Netns;
  readonly backends: BackendNode[] = [];
  readonly vip = '10.60.0.10';
  readonly lbAddress = '10.50.0.2';
  readonly clientAddress = '10.50.0.100';
  readonly dir: string;
  readonly pinDir: string;
  #agents: AgentProcess[] = [];
  #loads = new Set<ChildProcess>();

  constructor(readonly tag: string, backendCount: number) {
    this.dir = join('/run/xdplb-test', `${process.pid}-${tag}`);
    this.pinDir = join(this.dir, 'bpf');
    mkdirSync(this.pinDir, { recursive: true });
    sh('mount', ['-t', 'bpf', 'bpf', this.pinDir]);

    this.sw = this.lab.ns(`${tag}-sw`);
    this.sw.ip('link', 'add', 'br0', 'type', 'bridge');
    this.sw.ip('link', 'set', 'br0', 'up');
    this.client = this.lab.ns(`${tag}-cl`);
    this.lab.link(this.client, 'eth0', this.sw, 'p-client', 'br0');
    this.client.ip('addr', 'add', `${this.clientAddress}/24`, 'dev', 'eth0');
    this.client.ip('route', 'add', `${this.vip}/32`, 'via', this.lbAddress);
    // A veth hands the peer packets whose checksum is only partial (offload);
    // XDP forwards the raw frame, so the client computes checksums itself,
    // as a real NIC would before the wire.
    this.client.run('ethtool', ['-K', 'eth0', 'tx', 'off']);
    this.client.sysctl('net.ipv4.conf.all.rp_filter', 0);
    this.client.sysctl('net.ipv4.conf.eth0.rp_filter', 0);

    this.lb = this.lab.ns(`${tag}-lb`);
    this.lab.link(this.lb, 'eth0', this.sw, 'p-lb', 'br0');
    this.lb.ip('addr', 'add', `${this.lbAddress}/24`, 'dev', 'eth0');
    // Native XDP_TX out of a veth is delivered only if the peer runs XDP too.
    this.sw.ip('link', 'set', 'dev', 'p-lb', 'xdpdrv', 'obj', join(ROOT, 'bpf/build/xdp_pass.o'), 'sec', 'xdp');

    for (let i = 1; i <= backendCount; i++) this.addBackend(i);
  }

  addBackend(i: number): BackendNode {
    const name = `be${i}`;
    const ns = this.lab.ns(`${this.tag}-${name}`);
    this.lab.link(ns, 'eth0', this.sw, `p-${name}`, 'br0');
    const address = `10.50.0.${10 + i}`;
    ns.ip('addr', 'add', `${address}/24`, 'dev', 'eth0');
    ns.ip('addr', 'add', `${this.vip}/32`, 'dev', 'lo');
    // The VIP is on lo: never answer ARP for it, never use it as an ARP source.
    ns.sysctl('net.ipv4.conf.all.arp_ignore', 1);
    ns.sysctl('net.ipv4.conf.all.arp_announce', 2);
    ns.sysctl('net.ipv4.conf.all.rp_filter', 0);
    ns.sysctl('net.ipv4.conf.eth0.rp_filter', 0);
    const node: BackendNode = { name, ns, address, mac: macOf(ns, 'eth0'), server: null };
    this.backends.push(node);
    this.startServer(node);
    return node;
  }

  startServer(b: BackendNode): Promise<void> {
    const child = b.ns.spawn(process.execPath, [join(SUPPORT, 'http-server.mjs'), b.name, '80']);
    b.server = child;
    return new Promise((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`server ${b.name} exited ${String(code)}`)));
    });
  }

  stopServer(b: BackendNode): void {
    b.server?.kill('SIGKILL');
    b.server = null;
  }

  /** Loads the decap program on a backend for the VIP (ipip mode). */
  decap(b: BackendNode): void {
    b.ns.run(process.execPath, [XDPLB, 'decap', '--interface', 'eth0', '--vip', this.vip, '--pin-dir', join(this.pinDir, 'decap', b.name)]);
  }

  writeConfig(name: string, text: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, text);
    return path;
  }

  /** Starts the agent in the node's namespace; config null for Kubernetes mode (flags in `extra`). */
  startAgent(config: string | null, extra: string[] = []): AgentProcess {
    const child = this.lb.spawn(process.execPath, [XDPLB, 'agent', '--interface', 'eth0', ...(config === null ? [] : ['--config', config]), '--pin-dir', this.pinDir, '--metrics-address', '127.0.0.1:9477', '--log-level', 'debug', ...extra]);
    const logs: Record<string, unknown>[] = [];
    const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
    let buffered = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          entry = { msg: line };
        }
        logs.push(entry);
        for (const w of [...waiters]) {
          if (w.match(entry)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(entry);
          }
        }
      }
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const agent: AgentProcess = {
      child,
      logs,
      exited,
      waitForLog: (match, timeoutMs = 20_000) =>
        new Promise((resolve, reject) => {
          const found = logs.find(match);
          if (found !== undefined) return resolve(found);
          const timer = setTimeout(() => reject(new Error(`agent log not seen in ${timeoutMs} ms; stderr: ${stderr}; logs: ${JSON.stringify(logs.slice(-5))}`)), timeoutMs);
          waiters.push({ match, resolve: (l) => (clearTimeout(timer), resolve(l)) });
          void exited.then((code) => reject(new Error(`agent exited ${String(code)} before the log; stderr: ${stderr}`)));
        }),
    };
    this.#agents.push(agent);
    return agent;
  }

  /** Runs the load generator in the client namespace to completion. */
  async load(args: string[]): Promise<LoadResult> {
    const child = this.client.spawn(process.execPath, [join(SUPPORT, 'load.mjs'), `http://${this.vip}/`, ...args]);
    return collect(child);
  }

  /** Starts paced load (connections per second) in the client namespace; stop() ends it and returns the result. */
  async startLoad(rate: number): Promise<{ stop(): Promise<LoadResult> }> {
    const child = this.client.spawn(process.execPath, [join(SUPPORT, 'load.mjs'), `http://${this.vip}/`, '--rate', String(rate)]);
    this.#loads.add(child);
    const result = collect(child);
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    return {
      stop: async () => {
        child.kill('SIGTERM');
        this.#loads.delete(child);
        return result;
      },
    };
  }

  destroy(): void {
    for (const a of this.#agents) a.child.kill('SIGKILL');
    for (const l of this.#loads) l.kill('SIGKILL');
    this.lab.destroy();
    try {
      sh('umount', [this.pinDir]);
    } catch {
      /* not mounted */
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function collect(child: ChildProcess): Promise<LoadResult> {
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise((resolve, reject) => {
    child.once('exit', () => {
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(line) as LoadResult);
      } catch {
        reject(new Error(`load generator printed no result: ${out} ${err}`));
      }
    });
  });
}
