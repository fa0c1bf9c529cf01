/**
 * Opens waiting for a dial slot, through real daemons (issue 13, items 2 and 12): two dials to a
 * target that never answers hold `dials_in_flight = 2`; later opens queue behind them. A reload
 * that revokes a queued or in-flight open refuses it (no connection, no byte at the target); a
 * queued open cancelled by its application does not stall the opens behind it.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/control-client.js';
import type { ServerStatus } from '../../src/server/server-daemon.js';
import { startSlowTarget, type SlowTarget } from '../helpers/slow-target.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

let tunnel: TestTunnel;
let slow: SlowTarget;
let echo: { server: net.Server; port: number };
let secret: net.Server;
let secretPort: number;
const secretSeen = { connections: 0, bytes: 0 };
let ports: { slow: number; secret: number; echo: number };

beforeAll(async () => {
  slow = await startSlowTarget();
  echo = await startEchoServer();
  secret = net.createServer((s) => {
    secretSeen.connections++;
    s.on('error', () => {});
    s.on('data', (c: Buffer) => (secretSeen.bytes += c.length));
  });
  await new Promise<void>((r) => secret.listen(0, '127.0.0.1', r));
  secretPort = (secret.address() as net.AddressInfo).port;
  tunnel = new TestTunnel({
    peers: [{ name: 'alice', allow: [`127.0.0.1:${slow.port}`, `127.0.0.1:${echo.port}`, `127.0.0.1:${secretPort}`] }],
    // Long dial timeouts on both sides: the slow dials hold their slots for the whole test.
    serverLimits: 'dials_in_flight = 2\ndial_timeout_ms = 120000',
    clientLimits: 'dial_timeout_ms = 120000',
  });
  await tunnel.startServer();
  const forward = (port: number): string => `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${port}"\n`;
  const client = await tunnel.startClient('alice', forward(slow.port) + forward(secretPort) + forward(echo.port));
  const [a, b, c] = TestTunnel.listenerPorts(client);
  ports = { slow: a!, secret: b!, echo: c! };
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  await slow?.stop();
  echo?.server.close();
  secret?.close();
});

async function dials(): Promise<{ inFlight: number; queued: number }> {
  const reply = await controlRequest(tunnel.path('server.sock'), { cmd: 'status' });
  const s = (reply.status as ServerStatus).sessions.find((x) => x.peer === 'alice');
  return { inFlight: s?.dialsInFlight ?? -1, queued: s?.dialsQueued ?? -1 };
}

async function waitDials(inFlight: number, queued: number): Promise<void> {
  let last = { inFlight: -1, queued: -1 };
  try {
    await waitUntil(async () => {
      last = await dials();
      return last.inFlight === inFlight && last.queued === queued;
    }, `dials ${inFlight} in flight and ${queued} queued`);
  } catch (err) {
    throw new Error(`${(err as Error).message} (last seen ${JSON.stringify(last)})`, { cause: err });
  }
}

interface Local {
  readonly socket: net.Socket;
  readonly received: Buffer[];
  readonly closed: Promise<NodeJS.ErrnoException | undefined>;
}

function open(port: number, early?: string): Local {
  const socket = net.connect(port, '127.0.0.1');
  const received: Buffer[] = [];
  let error: NodeJS.ErrnoException | undefined;
  socket.on('data', (c: Buffer) => received.push(c));
  socket.on('error', (err) => (error = err));
  const closed = new Promise<NodeJS.ErrnoException | undefined>((r) => socket.once('close', () => r(error)));
  if (early !== undefined) socket.write(early);
  return { socket, received, closed };
}

async function reload(allow: string[]): Promise<Record<string, unknown>> {
  const server = tunnel.server!;
  const before = server.logLines().filter((l) => l.event === 'config.reload').length;
  tunnel.writePeers([{ ...tunnel.peers[0]!, allow }]);
  server.kill('SIGHUP');
  await server.waitFor((p) => p.logLines().filter((l) => l.event === 'config.reload').length > before, 'the reload');
  return server.logLines().filter((l) => l.event === 'config.reload')[before]!;
}

const refusals = (target: string): number =>
  tunnel.server!.logLines().filter((l) => l.event === 'stream.refused' && l.target === target && l.reason === 'not-permitted').length;

describe('pending opens through real daemons', () => {
  it('a reload refuses a queued open it revokes, and an in-flight one; the revoked target sees nothing', async () => {
    const slow1 = open(ports.slow);
    const slow2 = open(ports.slow);
    await waitDials(2, 0);
    const queued = open(ports.secret, 'bytes for the revoked target');
    await waitDials(2, 1);

    // SECRET leaves the rules: the queued open is refused at the reload.
    const first = await reload([`127.0.0.1:${slow.port}`, `127.0.0.1:${echo.port}`]);
    await waitUntil(() => refusals(`127.0.0.1:${secretPort}`) === 1, 'the queued open to be refused not-permitted');
    expect(first.opensRefused).toBe(1);
    expect((await queued.closed)?.code).toBe('ECONNRESET');
    await tunnel.clients[0]!.waitForEvent('stream.refused', { target: `127.0.0.1:${secretPort}`, reason: 'not-permitted' });
    await waitDials(2, 0);

    // The slow target leaves too: both dials in flight are refused (not left to time out).
    const second = await reload([`127.0.0.1:${echo.port}`]);
    await waitUntil(() => refusals(`127.0.0.1:${slow.port}`) === 2, 'both dials in flight to be refused not-permitted');
    expect(second.opensRefused).toBe(2);
    expect((await slow1.closed)?.code).toBe('ECONNRESET');
    expect((await slow2.closed)?.code).toBe('ECONNRESET');
    await waitDials(0, 0);

    // The freed slots carry a permitted open at once; the revoked target was never dialed.
    const ok = open(ports.echo, 'still serving');
    await waitUntil(() => Buffer.concat(ok.received).toString() === 'still serving', 'the echo through a freed slot');
    ok.socket.end();
    await ok.closed;
    expect(secretSeen).toEqual({ connections: 0, bytes: 0 });
  }, 30_000);

  it('a queued open cancelled by its application does not stall the next queued open', async () => {
    await reload([`127.0.0.1:${slow.port}`, `127.0.0.1:${echo.port}`]);
    const slow1 = open(ports.slow);
    const slow2 = open(ports.slow);
    await waitDials(2, 0);
    const cancelled = open(ports.echo);
    await waitDials(2, 1);
    const next = open(ports.echo, 'after the cancelled one');
    await waitDials(2, 2);

    // The application gives up (a reset) on the first queued open: the client resets the stream,
    // the server drops the open from the queue.
    cancelled.socket.resetAndDestroy();
    await waitDials(2, 1);
    // One slow dial gives up too: its slot must go to the open still queued.
    slow1.socket.resetAndDestroy();
    await waitUntil(() => Buffer.concat(next.received).toString() === 'after the cancelled one', 'the queued open to dial and echo');
    expect(await dials()).toEqual({ inFlight: 1, queued: 0 });
    next.socket.end();
    await next.closed;
    slow2.socket.resetAndDestroy();
    await waitDials(0, 0);
  }, 30_000);
});
afterAll(() => {
  if (process.env.DEBUG_PENDING)
    console.log(tunnel.server!.stdout.split('\n').slice(-40).join('\n'), tunnel.clients[0]!.stdout.split('\n').slice(-20).join('\n'));
});
