// probe.ts: one health probe of one backend, run from the node: a TCP connect
// or an HTTP GET, each bounded by a timeout. Resolves to the outcome; never
// throws (a probe that cannot even start is a failed probe, with its reason).
import { request } from 'node:http';
import { connect } from 'node:net';

export interface ProbeTarget {
  readonly type: 'tcp' | 'http';
  readonly address: string;
  readonly port: number;
  /** HTTP path, for type http. */
  readonly path: string;
  readonly timeoutMs: number;
}

export interface ProbeResult {
  readonly ok: boolean;
  /** Why it failed (errno code, HTTP status, "timeout"), or "ok". */
  readonly detail: string;
  readonly ms: number;
}

export function probe(target: ProbeTarget): Promise<ProbeResult> {
  return target.type === 'tcp' ? tcpProbe(target) : httpProbe(target);
}

function tcpProbe(t: ProbeTarget): Promise<ProbeResult> {
  const start = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host: t.address, port: t.port, noDelay: true });
    const done = (ok: boolean, detail: string): void => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve({ ok, detail, ms: performance.now() - start });
    };
    const timer = setTimeout(() => done(false, 'timeout'), t.timeoutMs);
    socket.once('connect', () => done(true, 'ok'));
    socket.once('error', (e: NodeJS.ErrnoException) => done(false, e.code ?? e.message));
  });
}

function httpProbe(t: ProbeTarget): Promise<ProbeResult> {
  const start = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (ok: boolean, detail: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ ok, detail, ms: performance.now() - start });
    };
    const req = request(
      { host: t.address, port: t.port, path: t.path, method: 'GET', agent: false, headers: { 'user-agent': 'xdplb-health/1', connection: 'close' } },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        finish(status >= 200 && status < 400, `HTTP ${status}`);
      },
    );
    const timer = setTimeout(() => finish(false, 'timeout'), t.timeoutMs);
    req.once('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
    req.end();
  });
}
