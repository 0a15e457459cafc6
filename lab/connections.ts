// connections.ts: long-lived connections held from the client namespace
// (bin/conns.mjs), for the flow-stickiness measurements of the tests and the
// demo: open N, then probe them after a change to see which still reach their
// backend and which broke.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Netns } from './netns.js';
import { LAB_BIN } from './root.js';

export type ConnResult = { id: number; port: number; backend: string } | { id: number; port: number; error: string };

export class ConnectionPool {
  readonly #child: ChildProcess;
  readonly #replies: ((line: string) => void)[] = [];
  readonly #ready: Promise<void>;
  #buffered = '';

  constructor(client: Netns, timeoutMs = 3000) {
    this.#child = client.spawn(process.execPath, [join(LAB_BIN, 'conns.mjs'), '--timeout-ms', String(timeoutMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let first = true;
    let markReady: () => void = () => undefined;
    this.#ready = new Promise((r) => (markReady = r));
    this.#child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.#buffered += d;
      let nl: number;
      while ((nl = this.#buffered.indexOf('\n')) >= 0) {
        const line = this.#buffered.slice(0, nl);
        this.#buffered = this.#buffered.slice(nl + 1);
        if (first) {
          first = false;
          markReady();
          continue;
        }
        this.#replies.shift()?.(line);
      }
    });
  }

  get #exited(): boolean {
    return this.#child.exitCode !== null || this.#child.signalCode !== null;
  }

  async #call(cmd: object): Promise<Record<string, unknown>> {
    await this.#ready;
    return new Promise((resolve, reject) => {
      if (this.#exited) return reject(new Error('conns.mjs has exited'));
      const onExit = (): void => reject(new Error('conns.mjs exited'));
      this.#child.once('exit', onExit);
      this.#replies.push((line) => {
        this.#child.off('exit', onExit);
        resolve(JSON.parse(line) as Record<string, unknown>);
      });
      this.#child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    });
  }

  /** Opens `count` connections to host:port, each answering one request. */
  async open(host: string, count: number, port = 80): Promise<ConnResult[]> {
    return (await this.#call({ op: 'open', host, count, port })).conns as ConnResult[];
  }

  /** One more request on every connection opened. */
  async probe(): Promise<ConnResult[]> {
    return (await this.#call({ op: 'probe' })).conns as ConnResult[];
  }

  async close(): Promise<void> {
    if (this.#exited) return;
    await this.#call({ op: 'close' }).catch(() => undefined);
    this.#child.kill('SIGKILL');
  }
}

/** Connections whose backend changed (or which broke) between two probes. */
export function brokenBetween(before: readonly ConnResult[], after: readonly ConnResult[]): { kept: number; broken: ConnResult[] } {
  const was = new Map(before.filter((c) => 'backend' in c).map((c) => [c.id, (c as { backend: string }).backend]));
  const broken: ConnResult[] = [];
  let kept = 0;
  for (const c of after) {
    const prior = was.get(c.id);
    if (prior === undefined) continue;
    if ('backend' in c && c.backend === prior) kept++;
    else broken.push(c);
  }
  return { kept, broken };
}
