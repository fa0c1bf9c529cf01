/**
 * The client bounds its wait for the server's answer to an open (issue 13, item 12): a server
 * whose dial hangs far longer than the client's `dial_timeout_ms` + 5 s does not leave
 * `twoway connect` or a SOCKS5 client waiting: connect exits 5 with a timeout, SOCKS5 replies
 * "TTL expired", and the reset cancels the dial on the server.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/control-client.js';
import type { ServerStatus } from '../../src/server/server-daemon.js';
import { runTwoway } from '../helpers/processes.js';
import { startSlowTarget, type SlowTarget } from '../helpers/slow-target.js';
import { TestTunnel } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

let tunnel: TestTunnel;
let slow: SlowTarget;
let socksPort: number;

beforeAll(async () => {
  slow = await startSlowTarget();
  tunnel = new TestTunnel({
    peers: [
      { name: 'alice', allow: [`127.0.0.1:${slow.port}`] },
      { name: 'bob', allow: [`127.0.0.1:${slow.port}`] },
    ],
    // The server would wait two minutes for the dial; the clients give up after 100 ms + 5 s.
    serverLimits: 'dial_timeout_ms = 120000',
    clientLimits: 'dial_timeout_ms = 100',
  });
  await tunnel.startServer();
  const client = await tunnel.startClient('alice', '[[socks]]\nlisten = "127.0.0.1:0"\n');
  socksPort = TestTunnel.listenerPorts(client)[0]!;
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  await slow?.stop();
});

/** A SOCKS5 CONNECT to 127.0.0.1:port; resolves with the reply code (or -1 if none came). */
function socksConnect(port: number): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect(socksPort, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('error', () => {});
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      // [05 00] method choice, then [05 REP ...] the reply.
      resolve(all.length >= 4 ? all[3]! : -1);
    });
    const request = Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, port >> 8, port & 0xff]);
    socket.write(request);
  });
}

describe("the wait for an open's answer is bounded", () => {
  it('twoway connect exits 5 with a timeout and SOCKS5 replies TTL expired; the server drops the dials', async () => {
    const target = `127.0.0.1:${slow.port}`;
    // bob has no client daemon running: connect opens a session of its own.
    const [connect, socksReply] = await Promise.all([
      runTwoway(['connect', '--config', tunnel.clientConfig('bob'), target], { timeoutMs: 30_000 }),
      socksConnect(slow.port),
    ]);
    expect(connect.code).toBe(5);
    expect(connect.stderr).toMatch(/no answer from the server within 5100 ms/);
    expect(socksReply).toBe(0x06);
    await tunnel.clients[0]!.waitForEvent('stream.refused', { target, reason: 'timeout' });
    // The clients' resets cancelled both dials on the server.
    await waitUntil(async () => {
      const reply = await controlRequest(tunnel.path('server.sock'), { cmd: 'status' });
      return (reply.status as ServerStatus).sessions.every((s) => s.dialsInFlight === 0 && s.dialsQueued === 0);
    }, 'no dial left on the server');
    expect(tunnel.server!.logLines().some((l) => l.event === 'stream.open')).toBe(false);
  }, 30_000);
});
