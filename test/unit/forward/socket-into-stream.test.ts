/**
 * socketIntoStream, the one accepted-TCP -> tunnel-stream piece of local forwards and reverse
 * listeners: real loopback sockets accepted by a real listener, an in-memory stream pair standing
 * in for the tunnel stream (its far end plays the other side: it accepts with 'open' or refuses).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { PipeResult } from '../../../src/forward/pipe.js';
import { socketIntoStream, type SocketIntoStreamHooks } from '../../../src/forward/socket-into-stream.js';
import { connectAndWatch, readAll, streamError, streamPair } from '../../helpers/fake-opener.js';
import { waitUntil } from '../../helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

interface Outcome {
  readonly events: string[];
  refusal?: Error & { reason?: string };
  done?: { result: PipeResult; opened: boolean };
  tapped: number;
}

/**
 * A listener whose every connection goes through socketIntoStream with `open`, its hooks recorded.
 * Resolves with its port and the outcome of each connection.
 */
async function listener(open: () => Duplex): Promise<{ port: number; outcomes: Outcome[]; streams: Array<Duplex | undefined> }> {
  const outcomes: Outcome[] = [];
  const streams: Array<Duplex | undefined> = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    const o: Outcome = { events: [], tapped: 0 };
    outcomes.push(o);
    const hooks: SocketIntoStreamHooks = {
      tap: (c) => (o.tapped += c.length),
      onOpen: () => o.events.push('open'),
      onRefused: (err) => {
        o.events.push('refused');
        o.refusal = err;
      },
      onDone: (result, opened) => {
        o.events.push('done');
        o.done = { result, opened };
      },
    };
    streams.push(socketIntoStream(socket, open, hooks));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, outcomes, streams };
}

describe('socketIntoStream', () => {
  it('carries bytes both ways with half-close once the far side accepts; taps both directions; done once, opened', async () => {
    const ends: Duplex[] = [];
    const { port, outcomes } = await listener(() => {
      const [near, far] = streamPair();
      far.on('error', () => {});
      ends.push(far);
      // The far side accepts, reads everything, and answers only after the FIN.
      process.nextTick(() => near.emit('open'));
      const got: Buffer[] = [];
      far.on('data', (c: Buffer) => got.push(c));
      far.on('end', () => far.end(Buffer.concat(got).reverse()));
      return near;
    });
    const up = randomBytes(500_000);
    const client = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    cleanups.push(() => void client.destroy());
    const back = readAll(client);
    client.end(up);
    expect((await back).equals(Buffer.from(up).reverse())).toBe(true);
    await waitUntil(() => outcomes[0]?.done !== undefined, 'the pair to close', 5_000);
    expect(outcomes[0]!.events).toEqual(['open', 'done']);
    expect(outcomes[0]!.done).toMatchObject({ opened: true, result: { how: 'closed', bytesFromSocket: up.length, bytesToSocket: up.length } });
    expect(outcomes[0]!.tapped).toBe(2 * up.length);
  });

  it('a refusal before the accept: onRefused with the reason, the client reset, done with opened false', async () => {
    const { port, outcomes } = await listener(() => {
      const [near, far] = streamPair();
      far.on('error', () => {});
      process.nextTick(() => near.destroy(streamError('ERR_MUX_STREAM_REFUSED', 'not-permitted', 'open x refused (not-permitted)')));
      return near;
    });
    const { client, outcome } = connectAndWatch(port);
    cleanups.push(() => void client.destroy());
    client.write('early bytes');
    expect(await outcome).toBe('ECONNRESET');
    await waitUntil(() => outcomes[0]?.done !== undefined, 'done', 5_000);
    expect(outcomes[0]!.events).toEqual(['refused', 'done']);
    expect(outcomes[0]!.refusal?.reason).toBe('not-permitted');
    expect(outcomes[0]!.done?.opened).toBe(false);
    expect(outcomes[0]!.done?.result.how).toBe('stream-error');
  });

  it('a reset after the accept is no refusal: the client is reset, done with opened true', async () => {
    const { port, outcomes } = await listener(() => {
      const [near, far] = streamPair();
      far.on('error', () => {});
      process.nextTick(() => {
        near.emit('open');
        setImmediate(() => near.destroy(streamError('ERR_MUX_STREAM_RESET', 'tunnel-closed')));
      });
      return near;
    });
    const { client, outcome } = connectAndWatch(port);
    cleanups.push(() => void client.destroy());
    expect(await outcome).toBe('ECONNRESET');
    await waitUntil(() => outcomes[0]?.done !== undefined, 'done', 5_000);
    expect(outcomes[0]!.events).toEqual(['open', 'done']);
    expect(outcomes[0]!.done?.opened).toBe(true);
  });

  it('an opener that throws (session gone): the client is reset at once, no hook runs, no stream', async () => {
    const { port, outcomes, streams } = await listener(() => {
      throw new Error('mux session is closed');
    });
    const { client, outcome } = connectAndWatch(port);
    cleanups.push(() => void client.destroy());
    expect(await outcome).toBe('ECONNRESET');
    expect(streams).toEqual([undefined]);
    expect(outcomes[0]!.events).toEqual([]);
  });
});
