// conns.mjs: long-lived connections for flow tests and the demo. Holds
// HTTP/1.1 keep-alive connections to the lab's backends (through a VIP) and
// asks each, on command, which backend answers it now. A connection whose
// flow lands on another backend is reset by that backend (it has no socket
// for it): that is a broken flow. Driven by JSON lines on stdin, one reply
// line each on stdout:
//   {"op":"open","host":VIP,"count":N}  -> {"conns":[{"id","port","backend"}]}
//   {"op":"probe"}  -> one request on every connection still open
//                      -> {"conns":[{"id","port","backend"} | {"id","port","error"}]}
//   {"op":"close"}  -> closes everything, replies {"closed":N}, exits
// usage: node conns.mjs [--timeout-ms T]
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const timeoutAt = args.indexOf('--timeout-ms');
const timeoutMs = timeoutAt < 0 ? 3000 : Number(args[timeoutAt + 1]);

/** @type {Map<number, {socket: import('node:net').Socket, port: number, broken: string | null, pending: ((r: {backend?: string, error?: string}) => void) | null, buf: string}>} */
const conns = new Map();
let nextId = 0;

function request(c) {
  return new Promise((resolve) => {
    if (c.broken !== null) return resolve({ error: c.broken });
    const timer = setTimeout(() => finish({ error: 'TIMEOUT' }), timeoutMs);
    function finish(r) {
      clearTimeout(timer);
      c.pending = null;
      if (r.error !== undefined && c.broken === null) {
        c.broken = r.error;
        c.socket.destroy();
      }
      resolve(r);
    }
    c.pending = finish;
    c.buf = '';
    c.socket.write('GET / HTTP/1.1\r\nHost: vip\r\nConnection: keep-alive\r\n\r\n');
  });
}

function onData(c, chunk) {
  c.buf += chunk;
  const head = c.buf.indexOf('\r\n\r\n');
  if (head < 0) return;
  const m = /content-length:\s*(\d+)/i.exec(c.buf.slice(0, head));
  const length = m === null ? 0 : Number(m[1]);
  if (c.buf.length < head + 4 + length) return;
  const body = c.buf.slice(head + 4, head + 4 + length);
  c.buf = '';
  c.pending?.({ backend: body });
}

function open(host, port) {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const c = { socket, port: 0, broken: null, pending: null, buf: '' };
    const id = nextId++;
    socket.setEncoding('utf8');
    socket.on('data', (d) => onData(c, d));
    socket.on('error', (e) => {
      c.broken ??= e.code ?? e.message;
      c.pending?.({ error: c.broken });
    });
    socket.on('close', () => {
      c.broken ??= 'CLOSED';
      c.pending?.({ error: c.broken });
    });
    const timer = setTimeout(() => {
      c.broken ??= 'TIMEOUT';
      socket.destroy();
      resolve({ id, port: 0, error: 'TIMEOUT' });
    }, timeoutMs);
    socket.once('connect', async () => {
      clearTimeout(timer);
      c.port = socket.localPort;
      conns.set(id, c);
      const r = await request(c);
      resolve({ id, port: c.port, ...r });
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve({ id, port: 0, error: c.broken });
    });
  });
}

async function handle(cmd) {
  if (cmd.op === 'open') {
    const out = [];
    // A few at a time: a burst of SYNs is not what this measures.
    for (let i = 0; i < cmd.count; i += 16) {
      const batch = Array.from({ length: Math.min(16, cmd.count - i) }, () => open(cmd.host, cmd.port ?? 80));
      out.push(...(await Promise.all(batch)));
    }
    return { conns: out };
  }
  if (cmd.op === 'probe') {
    const out = await Promise.all([...conns].map(async ([id, c]) => ({ id, port: c.port, ...(await request(c)) })));
    return { conns: out };
  }
  if (cmd.op === 'close') {
    for (const c of conns.values()) c.socket.destroy();
    return { closed: conns.size };
  }
  return { error: `unknown op ${String(cmd.op)}` };
}

const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\n');
for await (const line of lines) {
  if (line.trim() === '') continue;
  const reply = await handle(JSON.parse(line));
  process.stdout.write(`${JSON.stringify(reply)}\n`);
  if (reply.closed !== undefined) process.exit(0);
}
