// neighbors.ts: finds the MAC address a frame to a backend must carry, from the
// kernel's own routing and neighbour tables (iproute2's JSON output). For
// `ipip` that is the next hop toward the backend (its gateway, or the backend
// itself when on-link); for `l2dsr` the backend must be on-link and it is the
// backend's own MAC. A missing entry is resolved by sending one datagram to
// the backend (the kernel then ARPs / solicits), and polled briefly; what stays
// unresolved is reported, never forwarded into the void.
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export type Resolution =
  | { readonly ok: true; readonly mac: string; readonly nextHop: string }
  | { readonly ok: false; readonly reason: string };

/** Runs `ip ARGS` and returns its stdout. Injected so tests can see the calls. */
export type IpRunner = (args: readonly string[]) => Promise<string>;

export const runIp: IpRunner = async (args) => (await execFileP('ip', [...args], { timeout: 5000 })).stdout;

export interface NeighborResolverOptions {
  /** The interface the XDP program transmits on: routes must leave through it. */
  readonly interfaceName: string;
  readonly ip?: IpRunner;
  /** Makes the kernel resolve `address` (default: one UDP datagram to it). */
  readonly trigger?: (address: string) => Promise<void>;
  /** How long to wait for a triggered resolution. */
  readonly resolveTimeoutMs?: number;
}

interface RouteJson { dst?: string; gateway?: string; dev?: string }
interface NeighJson { dst?: string; lladdr?: string; state?: string[] }

const USABLE = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

export class NeighborResolver {
  readonly #ifname: string;
  readonly #ip: IpRunner;
  readonly #timeoutMs: number;
  readonly #trigger: (address: string) => Promise<void>;

  constructor(o: NeighborResolverOptions) {
    this.#ifname = o.interfaceName;
    this.#ip = o.ip ?? runIp;
    this.#timeoutMs = o.resolveTimeoutMs ?? 1000;
    this.#trigger = o.trigger ?? poke;
  }

  /** The MAC to send `address`'s frames to. `onLink` demands no gateway (l2dsr). */
  async resolve(address: string, onLink: boolean): Promise<Resolution> {
    let routes: RouteJson[];
    try {
      routes = JSON.parse(await this.#ip(['-j', 'route', 'get', address])) as RouteJson[];
    } catch (e) {
      return { ok: false, reason: `no route to ${address}: ${firstLine(e)}` };
    }
    const route = routes[0];
    if (route === undefined) return { ok: false, reason: `no route to ${address}` };
    if (route.dev !== this.#ifname) {
      return { ok: false, reason: `the route to ${address} leaves via ${route.dev ?? '?'}, not ${this.#ifname}` };
    }
    if (onLink && route.gateway !== undefined) {
      return { ok: false, reason: `${address} is behind gateway ${route.gateway}; l2dsr needs backends on the same L2 segment` };
    }
    const nextHop = route.gateway ?? address;
    const deadline = performance.now() + this.#timeoutMs;
    let triggered = false;
    for (;;) {
      const mac = await this.#lookup(nextHop);
      if (mac !== null) return { ok: true, mac, nextHop };
      if (performance.now() >= deadline) return { ok: false, reason: `no neighbour entry for ${nextHop} on ${this.#ifname} (ARP/ND unanswered)` };
      if (!triggered) {
        triggered = true;
        await this.#trigger(address);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async #lookup(nextHop: string): Promise<string | null> {
    let entries: NeighJson[];
    try {
      entries = JSON.parse(await this.#ip(['-j', 'neigh', 'show', 'to', nextHop, 'dev', this.#ifname])) as NeighJson[];
    } catch {
      return null;
    }
    for (const n of entries) {
      if (n.lladdr !== undefined && (n.state ?? []).some((s) => USABLE.has(s))) return n.lladdr.toLowerCase();
    }
    return null;
  }
}

/** One UDP datagram to the discard port: makes the kernel resolve the next hop. */
export async function poke(address: string): Promise<void> {
  const socket = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => {
    socket.once('error', () => resolve());
    socket.send(Buffer.alloc(0), 9, address, () => resolve());
  });
  socket.close();
}

function firstLine(e: unknown): string {
  const err = e as { stderr?: string; message?: string };
  return (err.stderr ?? err.message ?? String(e)).trim().split('\n')[0] ?? '';
}
