// A plain Node.js TCP relay (no crypto, no framing, stream.pipe both ways), for the benchmark row
// "node-relay-2hop": two of these chained are the floor of any pair of Node.js daemons on this
// machine, measured beside twoway. Usage: node bench/node-relay.mjs LISTEN_PORT TARGET_PORT
// (loopback only; runs until killed).
import net from 'node:net';

const [listenPort, targetPort] = process.argv.slice(2).map(Number);
if (!(listenPort > 0 && targetPort > 0)) {
  console.error('usage: node bench/node-relay.mjs LISTEN_PORT TARGET_PORT');
  process.exit(2);
}
net
  .createServer({ allowHalfOpen: true, noDelay: true }, (inbound) => {
    const outbound = net.connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true, noDelay: true });
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  })
  .listen({ host: '127.0.0.1', port: listenPort, backlog: 511 });
