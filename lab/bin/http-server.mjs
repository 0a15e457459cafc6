// http-server.mjs: a backend for namespace tests. Answers every request with
// its name, on every address of the namespace (so a VIP on lo is served),
// with the client's address as it sees it in the x-client-address header.
// usage: node http-server.mjs NAME [PORT]
import { createServer } from 'node:http';

const [name = 'backend', port = '80'] = process.argv.slice(2);
const server = createServer((req, res) => {
  // Keep the connection only when the client asks to (long-lived flow tests).
  if (req.headers.connection !== 'keep-alive') res.setHeader('connection', 'close');
  res.setHeader('x-client-address', req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '');
  res.end(name);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(port), '::', () => process.stdout.write(`listening ${name} ${port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
