// health.ts: the operator's HTTP endpoints for its Deployment: /healthz
// answers while the process's event loop runs; /readyz once the informers'
// caches have synced (a replica that cannot list the API is not ready);
// /metrics, Prometheus text from the given registry (metrics.ts).
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { listenOn } from '../net/http.js';

export async function serveHealth(address: string, ready: () => boolean, registry?: Registry): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics' && registry !== undefined) {
      registry
        .metrics()
        .then((text) => {
          res.setHeader('content-type', registry.contentType);
          res.end(text);
        })
        .catch((e: unknown) => {
          res.statusCode = 500;
          res.end(String(e));
        });
    } else if (req.url === '/healthz') {
      res.end('ok\n');
    } else if (req.url === '/readyz') {
      const ok = ready();
      res.statusCode = ok ? 200 : 503;
      res.end(ok ? 'ok\n' : 'caches not synced\n');
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  return listenOn(server, address);
}
