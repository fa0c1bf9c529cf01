/**
 * Streams through real daemons started from bin/: data both ways with sha256 at the far end,
 * hundreds of concurrent streams, a slow reader beside a fast stream, half-close both ways, and
 * refusals (target closed, not permitted) reported to the application and in both logs.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusingPort } from '../helpers/ports.js';
import { TestTunnel, startAnsweringSink, startEchoServer } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

let tunnel: TestTunnel;
let sink: net.Server;
let sinkPort: number;
let echo: { server: net.Server; port: number };
let refusedPort: number;
let forwardPorts: number[];
let finFirst: net.Server;
const finFirstGot: string[] = [];
let sinkDigests: string[];

/** The sink hashes everything it receives, then answers with `RESPONSE_BYTES` of its own. */
const RESPONSE_BYTES = 24 * 1024 * 1024;
const response = randomBytes(RESPONSE_BYTES);
const responseDigest = createHash('sha256').update(response).digest('hex');

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

beforeAll(async () => {
  ({ server: sink, port: sinkPort, digests: sinkDigests } = await startAnsweringSink(response));
  echo = await startEchoServer();
  refusedPort = await refusingPort();
  // A target that speaks first and shuts its writing side at once, then keeps reading.
  finFirst = net.createServer((socket) => {
    socket.on('error', () => {});
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => finFirstGot.push(Buffer.concat(chunks).toString()));
    socket.end('greeting then FIN');
  });
  await new Promise<void>((r) => finFirst.listen(0, '127.0.0.1', r));
  const finFirstPort = (finFirst.address() as net.AddressInfo).port;
  tunnel = new TestTunnel({
    peers: [{ name: 'alice', allow: [`127.0.0.1:${sinkPort},${echo.port},${refusedPort},${finFirstPort}`] }],
    serverLimits: 'max_streams_per_session = 1024\nstream_open_rate = 5000\nstream_open_burst = 5000\ndials_in_flight = 512',
    clientLimits: 'max_streams_per_session = 1024',
  });
  await tunnel.startServer();
  const listeners =
    `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${sinkPort}"\n` +
    `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echo.port}"\n` +
    `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${refusedPort}"\n` +
    `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:22"\n` +
    `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${finFirstPort}"\n`;
  const client = await tunnel.startClient('alice', listeners);
  forwardPorts = TestTunnel.listenerPorts(client);
  expect(forwardPorts).toHaveLength(5);
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  sink?.close();
  echo?.server.close();
  finFirst?.close();
});

/** Connects, sends `data`, half-closes, and collects everything until the far end closes. */
function exchange(port: number, data: Buffer): Promise<{ received: Buffer; error?: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let error: NodeJS.ErrnoException | undefined;
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', (err) => (error = err));
    socket.on('close', () => resolve({ received: Buffer.concat(chunks), ...(error ? { error } : {}) }));
    socket.end(data);
  });
}

describe('streams through real daemons', () => {
  it('carries 32 MiB up and 24 MiB down intact (sha256 at the far end)', async () => {
    const up = randomBytes(32 * 1024 * 1024);
    const before = sinkDigests.length;
    const { received, error } = await exchange(forwardPorts[0]!, up);
    expect(error).toBeUndefined();
    expect(sinkDigests[before]).toBe(sha256(up));
    expect(received.length).toBe(RESPONSE_BYTES);
    expect(sha256(received)).toBe(responseDigest);
  }, 60_000);

  it('runs 300 concurrent streams in one session, each intact', async () => {
    const payloads = Array.from({ length: 300 }, (_, i) => randomBytes(1024 + i * 37));
    const results = await Promise.all(payloads.map((p) => exchange(forwardPorts[1]!, p)));
    results.forEach((r, i) => {
      expect(r.error).toBeUndefined();
      expect(sha256(r.received)).toBe(sha256(payloads[i]!));
    });
  }, 60_000);

  it('a reader that never reads does not stall another stream', async () => {
    // The slow stream: the echo's answers pile up against a socket that is paused.
    const slow = net.connect(forwardPorts[1]!, '127.0.0.1');
    slow.on('error', () => {});
    await new Promise((r) => slow.once('connect', r));
    slow.pause();
    const junk = randomBytes(8 * 1024 * 1024);
    slow.write(junk);
    const fast = randomBytes(16 * 1024 * 1024);
    const { received, error } = await exchange(forwardPorts[1]!, fast);
    expect(error).toBeUndefined();
    expect(sha256(received)).toBe(sha256(fast));
    // The slow stream is intact too once it reads again.
    const chunks: Buffer[] = [];
    slow.on('data', (c) => chunks.push(c));
    slow.resume();
    slow.end();
    await new Promise((r) => slow.once('close', r));
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(junk));
  }, 60_000);

  it('carries half-close both ways: the client shuts writing and still reads', async () => {
    // exchange() half-closes right after writing; the sink answers only after seeing our FIN.
    const { received, error } = await exchange(forwardPorts[0]!, Buffer.from('ping'));
    expect(error).toBeUndefined();
    expect(received.length).toBe(RESPONSE_BYTES);
  }, 30_000);

  it('carries half-close the other way: the target shuts writing and still reads', async () => {
    const socket = net.connect({ port: forwardPorts[4]!, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    await new Promise((r) => socket.once('end', r));
    expect(Buffer.concat(chunks).toString()).toBe('greeting then FIN');
    // Our direction is still open after the target's FIN.
    socket.end('answer after your FIN');
    await new Promise((r) => socket.once('close', r));
    await waitUntil(() => finFirstGot.length > 0, 'the target to receive the answer');
    expect(finFirstGot[0]).toBe('answer after your FIN');
  });

  it('a target that refuses the connection resets the application socket and is logged on both sides', async () => {
    const { received, error } = await exchange(forwardPorts[2]!, Buffer.from('hello'));
    expect(received.length).toBe(0);
    expect(error?.code).toBe('ECONNRESET');
    await tunnel.server!.waitForEvent('stream.refused', { reason: 'connection-refused' });
    await tunnel.clients[0]!.waitForEvent('stream.refused', { reason: 'connection-refused' });
  });

  it('a target the peer may not reach is refused, logged with the peer name and target', async () => {
    const { error } = await exchange(forwardPorts[3]!, Buffer.from('SSH-2.0-x\r\n'));
    expect(error?.code).toBe('ECONNRESET');
    const line = await tunnel.server!.waitForEvent('stream.refused', { reason: 'not-permitted' });
    expect(line.peer).toBe('alice');
    expect(line.target).toBe('127.0.0.1:22');
    await tunnel.clients[0]!.waitForEvent('stream.refused', { reason: 'not-permitted' });
  });

  it('the session survives all of the above', async () => {
    await waitUntil(() => tunnel.server!.logLines().every((l) => l.event !== 'session.closed'), 'no session closed', 1000);
    const { received } = await exchange(forwardPorts[1]!, Buffer.from('still here'));
    expect(received.toString()).toBe('still here');
  });
});
