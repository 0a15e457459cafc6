// tcp-forward.mjs: forwards TCP connections from a local port to another
// address: lets a process inside a network namespace reach the test API
// server on the host (whose certificate is for 127.0.0.1) through a veth.
// usage: node tcp-forward.mjs LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT
import { connect, createServer } from 'node:net';

const [listenHost, listenPort, targetHost, targetPort] = process.argv.slice(2);
const server = createServer((client) => {
  const upstream = connect({ host: targetHost, port: Number(targetPort) });
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
});
server.listen(Number(listenPort), listenHost, () => process.stdout.write('forwarding\n'));
