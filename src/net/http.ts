// http.ts: the one HTTP listen helper of the agent's metrics and the
// operator's probes: HOST:PORT parsed once, the server listening before the
// promise resolves (a port in use rejects instead of failing later).
import type { Server } from 'node:http';

/** Starts `server` listening on HOST:PORT; resolves once it listens. */
export async function listenOn<S extends Server>(server: S, address: string): Promise<S> {
  const { host, port } = parseListenAddress(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return server;
}

export function parseListenAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (m === null) throw new RangeError(`listen address must be HOST:PORT, got ${JSON.stringify(address)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new RangeError(`port ${port} is out of range`);
  return { host: m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!), port };
}
