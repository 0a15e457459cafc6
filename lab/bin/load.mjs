// load.mjs: the lab's client (tests and the demo). Opens real TCP connections to a
// URL (one HTTP request each, connection closed), and prints one JSON object:
// ok and failed counts, answers per backend name, errors by code, and for
// each connection (with --trace) its local port and answer.
//   node load.mjs URL --count N [--concurrency C] [--local-port P] [--trace]
//   node load.mjs URL --rate R [--report-ms M] (until SIGTERM/SIGINT, then prints;
//     with --report-ms, running totals {"t":ms,...} every M ms before that)
//   node load.mjs URL --keepalive N [--gap-ms G]  (one connection, N requests on it)
import { request } from 'node:http';
import { connect } from 'node:net';

const args = process.argv.slice(2);
const url = new URL(args[0]);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? dflt : args[i + 1];
};
const count = Number(opt('count', '0'));
const concurrency = Number(opt('concurrency', '16'));
const rate = Number(opt('rate', '0'));
const localPort = opt('local-port', undefined);
const timeoutMs = Number(opt('timeout-ms', '3000'));
const trace = args.includes('--trace');

const result = { ok: 0, failed: 0, byBackend: {}, errors: {}, trace: [], firstFailureAt: null, lastFailureAt: null };
const start = Date.now();

// With a fixed local port, every connection is the same 5-tuple: the client
// lets the server close first (it then holds TIME_WAIT, which accepts a new
// SYN of the same 4-tuple), so the port can be bound again at once.
const LOCAL_BUSY = new Set(['EADDRINUSE', 'EADDRNOTAVAIL']);

async function onceSamePort() {
  // The previous connection's socket can linger a moment in the client's
  // kernel after close (LAST_ACK): binding the port (EADDRINUSE) or
  // connecting the same 4-tuple (EADDRNOTAVAIL) fails until then. No packet
  // left the client: not a failure of the path under test; try again shortly.
  for (let attempt = 0; ; attempt++) {
    const error = await onceSamePortAttempt(attempt < 300);
    if (!LOCAL_BUSY.has(error)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

function onceSamePortAttempt(retryBind) {
  return new Promise((resolve) => {
    let done = false;
    let body = '';
    const socket = connect({ host: url.hostname, port: Number(url.port || 80), localPort: Number(localPort) });
    const finish = (error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (LOCAL_BUSY.has(error) && retryBind) {
        socket.destroy();
        return resolve(error);
      }
      const answer = body.slice(body.indexOf('\r\n\r\n') + 4);
      if (error === null && /^HTTP\/1\.1 200/.test(body)) {
        result.ok++;
        result.byBackend[answer] = (result.byBackend[answer] ?? 0) + 1;
      } else {
        result.failed++;
        const code = error ?? 'EBODY';
        result.errors[code] = (result.errors[code] ?? 0) + 1;
      }
      socket.destroy();
      resolve(error);
    };
    const timer = setTimeout(() => finish('TIMEOUT'), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`));
    socket.on('data', (d) => (body += d));
    // 'close' after the server's FIN: node answers it with ours (allowHalfOpen off).
    socket.on('close', () => finish(null));
    socket.on('error', (e) => finish(e.code ?? e.message));
  });
}

function once() {
  if (localPort !== undefined) return onceSamePort();
  return new Promise((resolve) => {
    let done = false;
    const finish = (answer, error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (error === null) {
        result.ok++;
        result.byBackend[answer] = (result.byBackend[answer] ?? 0) + 1;
      } else {
        result.failed++;
        result.errors[error] = (result.errors[error] ?? 0) + 1;
        const t = Date.now() - start;
        result.firstFailureAt ??= t;
        result.lastFailureAt = t;
      }
      resolve();
    };
    const req = request({ host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port || 80, path: url.pathname, agent: false, localPort: localPort === undefined ? undefined : Number(localPort), headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        if (trace) result.trace.push({ localPort: req.socket?.localPort, answer: body });
        finish(body, null);
      });
      res.on('error', (e) => finish(null, e.code ?? 'EBODY'));
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish(null, 'TIMEOUT');
    }, timeoutMs);
    req.on('error', (e) => finish(null, e.code ?? e.message));
    req.end();
  });
}

async function fixed() {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      await once();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

async function paced() {
  let stop = false;
  process.once('SIGTERM', () => (stop = true));
  process.once('SIGINT', () => (stop = true));
  const inflight = new Set();
  const gap = 1000 / rate;
  let due = Date.now();
  process.stdout.write('started\n');
  const reportMs = Number(opt('report-ms', '0'));
  const reporter = reportMs > 0 ? setInterval(() => {
    const { ok, failed, byBackend, errors } = result;
    process.stdout.write(`${JSON.stringify({ t: Date.now(), ok, failed, byBackend, errors })}\n`);
  }, reportMs) : null;
  while (!stop) {
    const p = once().then(() => inflight.delete(p));
    inflight.add(p);
    due += gap;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(inflight);
  if (reporter !== null) clearInterval(reporter);
}

async function keepalive(n, gapMs) {
  const { Agent } = await import('node:http');
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const ports = new Set();
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => {
      const req = request({ host: url.hostname, port: url.port || 80, path: url.pathname, agent, headers: { connection: 'keep-alive' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          ports.add(req.socket.localPort);
          result.ok++;
          result.byBackend[body] = (result.byBackend[body] ?? 0) + 1;
          resolve();
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error('TIMEOUT')));
      req.on('error', (e) => {
        result.failed++;
        result.errors[e.code ?? e.message] = (result.errors[e.code ?? e.message] ?? 0) + 1;
        resolve();
      });
      req.end();
    });
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
  }
  result.connections = ports.size;
  agent.destroy();
}

const keep = Number(opt('keepalive', '0'));
await (keep > 0 ? keepalive(keep, Number(opt('gap-ms', '0'))) : rate > 0 ? paced() : fixed());
result.ms = Date.now() - start;
if (!trace) delete result.trace;
process.stdout.write(`${JSON.stringify(result)}\n`);
