import { createHash, randomBytes } from 'node:crypto';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { pipeSocketStream, type PipeResult } from '../../../src/forward/pipe.js';
import { connectLoopback, readAll, streamError, streamPair, tcpServer } from '../../helpers/fake-opener.js';
import { waitUntil } from '../../helpers/wait.js';

interface Rig {
  client: net.Socket;
  accepted: net.Socket;
  far: Duplex;
  done: Promise<PipeResult>;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** client <-TCP-> accepted socket <-pipe-> near end ... far end (the test plays the tunnel). */
async function rig(): Promise<Rig> {
  let onAccept!: (s: net.Socket) => void;
  const accepted = new Promise<net.Socket>((r) => (onAccept = r));
  const server = await tcpServer(onAccept);
  cleanups.push(server.close);
  const client = await connectLoopback(server.port);
  cleanups.push(() => void client.destroy());
  const socket = await accepted;
  const [near, far] = streamPair();
  far.on('error', () => {});
  const done = new Promise<PipeResult>((resolve) => pipeSocketStream(socket, near, { onDone: resolve }));
  return { client, accepted: socket, far, done };
}

/** Resolves with how the client socket ended: 'end' (clean FIN) or the error code. */
function clientOutcome(client: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    client.once('end', () => resolve('end'));
    client.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

describe('pipeSocketStream', () => {
  it('carries a FIN from the socket without closing the other direction', async () => {
    const { client, far, done } = await rig();
    const farGot = readAll(far);
    client.write('request');
    client.end();
    expect((await farGot).toString()).toBe('request');
    // The tunnel direction is still open: the reply arrives after the client's FIN.
    const clientGot = readAll(client);
    far.write('reply after your FIN');
    far.end();
    expect((await clientGot).toString()).toBe('reply after your FIN');
    const result = await done;
    expect(result).toMatchObject({ how: 'closed', bytesFromSocket: 7, bytesToSocket: 20 });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('carries a FIN from the stream without closing the other direction', async () => {
    const { client, far, done } = await rig();
    const clientGot = readAll(client);
    far.end('banner');
    expect((await clientGot).toString()).toBe('banner');
    expect(client.destroyed).toBe(false);
    const farGot = readAll(far);
    client.end('late data');
    expect((await farGot).toString()).toBe('late data');
    expect((await done).how).toBe('closed');
  });

  it('resets the socket (ECONNRESET, never a clean end) when the stream dies', async () => {
    const { client, far, done } = await rig();
    const outcome = clientOutcome(client);
    const farGot: Buffer[] = [];
    far.on('data', (c: Buffer) => farGot.push(c));
    far.write('partial');
    client.on('data', () => far.destroy(streamError('ERR_MUX_STREAM_RESET', 'tunnel-closed')));
    expect(await outcome).toBe('ECONNRESET');
    const result = await done;
    expect(result.how).toBe('stream-error');
    expect(result.error).toMatchObject({ code: 'ERR_MUX_STREAM_RESET' });
  });

  it('resets the socket even after its FIN went out, when the stream dies before its own end', async () => {
    const { client, far, done } = await rig();
    const outcome = clientOutcome(client);
    client.end('bye');
    await readAll(far).catch(() => undefined);
    far.destroy(streamError('ERR_MUX_CLOSED', 'tunnel-closed'));
    expect(await outcome).toBe('ECONNRESET');
    expect((await done).how).toBe('stream-error');
  });

  it('resets the stream when the socket fails', async () => {
    const { client, far, done } = await rig();
    const farError = new Promise<Error>((resolve) => far.once('error', resolve));
    const first = new Promise((resolve) => far.once('data', resolve));
    client.write('x');
    await first;
    client.resetAndDestroy();
    expect(await farError).toMatchObject({ code: 'ERR_MUX_STREAM_RESET' });
    const result = await done;
    expect(result.how).toBe('socket-error');
    expect((result.error as NodeJS.ErrnoException).code).toBe('ECONNRESET');
  });

  it('applies backpressure from the stream to the socket, then delivers every byte', async () => {
    const { client, accepted, far, done } = await rig();
    const data = randomBytes(4 * 1024 * 1024);
    client.end(data);
    // Nobody reads the far end yet: the accepted socket must be paused, not buffering 4 MiB.
    await waitUntil(() => accepted.isPaused(), 'socket paused', 5_000);
    expect(far.readableLength).toBeLessThan(1024 * 1024);
    const got = await readAll(far);
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    far.end();
    await readAll(client);
    expect((await done).bytesFromSocket).toBe(data.length);
  });

  it('applies backpressure from the socket to the stream', async () => {
    const { client, accepted, far, done } = await rig();
    client.pause();
    const data = randomBytes(32 * 1024 * 1024);
    const CHUNK = 16 * 1024;
    // The far end writes like the mux does (16 KiB chunks, honouring its own write() === false).
    let offered = 0;
    const writer = (async () => {
      while (offered < data.length) {
        const ok = far.write(data.subarray(offered, offered + CHUNK));
        offered += CHUNK;
        if (!ok) await new Promise((r) => far.once('drain', r));
      }
      far.end();
    })();
    // The client does not read: the writer must stall long before 32 MiB (loopback socket buffers alone may hold several MiB), and the socket's queue stay bounded.
    await waitUntil(() => accepted.writableLength > 0 && far.writableNeedDrain, 'writer stalled', 5_000);
    const stalledAt = offered;
    await new Promise((r) => setTimeout(r, 50));
    expect(offered).toBe(stalledAt);
    expect(offered).toBeLessThan(data.length / 2);
    expect(accepted.writableLength).toBeLessThan(1024 * 1024);
    const gotP = readAll(client);
    client.resume();
    const got = await gotP;
    await writer;
    expect(got.equals(data)).toBe(true);
    client.end();
    expect((await done).bytesToSocket).toBe(data.length);
  });

  it('handles a stream that was already gone when piping started', async () => {
    let onAccept!: (s: net.Socket) => void;
    const accepted = new Promise<net.Socket>((r) => (onAccept = r));
    const server = await tcpServer(onAccept);
    cleanups.push(server.close);
    const client = await connectLoopback(server.port);
    const socket = await accepted;
    const [near, far] = streamPair();
    far.on('error', () => {});
    near.on('error', () => {});
    near.destroy();
    await waitUntil(() => near.closed);
    const outcome = clientOutcome(client);
    const result = await new Promise<PipeResult>((resolve) => pipeSocketStream(socket, near, { onDone: resolve }));
    expect(await outcome).toBe('ECONNRESET');
    expect(result.how).toBe('reset');
  });
});
