// health.ts: the operator's probe endpoints for its Deployment: /healthz
// answers while the process's event loop runs; /readyz once the informers'
// caches have synced (a replica that cannot list the API is not ready).
import { createServer, type Server } from 'node:http';
import { listenOn } from '../net/http.js';

export async function serveHealth(address: string, ready: () => boolean): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
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
