import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { relayStreams, type RelayHooks, type RelayResult } from '../../../src/forward/relay.js';
import { DeviceRules } from '../../../src/policy/device-rules.js';
import { DEFAULT_MAX_STREAM_WINDOW_BYTES, DEFAULT_STREAM_WINDOW_BYTES } from '../../../src/mux/mux-limits.js';
import { MAX_DATA_FRAME_BYTES, STREAM_WRITE_HIGH_WATER_BYTES, type MuxStream } from '../../../src/mux/stream.js';
import { drain, pump, sessionPair } from '../../helpers/streams.js';
import { waitUntil } from '../../helpers/wait.js';

interface Relayed {
  /** The user's end (opener on the user's session). */
  user: MuxStream;
  /** The device's end (acceptor on the device's session). */
  device: MuxStream;
  /** The server's two ends, relayed into each other. */
  fromUser: MuxStream;
  toDevice: MuxStream;
  done: Promise<RelayResult>;
  calls: () => number;
  relay: ReturnType<typeof relayStreams>;
}

/** user client -> (server: accepts, relays) -> device: a relay between two accepted/opened mux streams. */
async function relayed(hooks: Omit<RelayHooks, 'onDone'> = {}): Promise<Relayed> {
  const userSide = sessionPair();
  const deviceSide = sessionPair();
  const user = userSide.client.openStream('build1:ssh');
  await waitUntil(() => userSide.requests.length === 1);
  const toDevice = deviceSide.client.openStream('svc=ssh');
  await waitUntil(() => deviceSide.requests.length === 1);
  const device = deviceSide.requests[0]!.accept();
  await new Promise((r) => toDevice.once('open', r));
  const fromUser = userSide.requests[0]!.accept();
  let resolve!: (r: RelayResult) => void;
  let calls = 0;
  const done = new Promise<RelayResult>((r) => (resolve = r));
  const relay = relayStreams(fromUser, toDevice, {
    ...hooks,
    onDone: (r) => {
      calls++;
      resolve(r);
    },
  });
  await new Promise((r) => user.once('open', r));
  return { user, device, fromUser, toDevice, done, relay, calls: () => calls };
}

function failure(stream: MuxStream): Promise<Error & { reason?: string }> {
  return new Promise((r) => stream.once('error', r));
}

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

describe('relayStreams', () => {
  it('carries bytes both ways with backpressure and each half-close, and counts them', async () => {
    const { user, device, done, calls } = await relayed();
    const up = drain(device);
    const down = drain(user);
    const [upHash, downHash] = await Promise.all([pump(user, 3 * 1024 * 1024), pump(device, 2 * 1024 * 1024)]);
    expect((await up).hash).toBe(upHash);
    expect((await down).hash).toBe(downHash);
    const result = await done;
    expect(result).toMatchObject({ aToB: 3 * 1024 * 1024, bToA: 2 * 1024 * 1024, how: 'closed' });
    expect(result.reason).toBeUndefined();
    await turns(5);
    expect(calls()).toBe(1);
  });

  it('a half-close one way leaves the other way open', async () => {
    const { user, device, done } = await relayed();
    const up = drain(device);
    user.end(Buffer.from('request'));
    const got = await up;
    expect(got.length).toBe('request'.length);
    // The device still answers after the user's FIN, then closes its side.
    const down = drain(user);
    device.end(Buffer.from('a longer reply'));
    expect((await down).length).toBe('a longer reply'.length);
    expect(await done).toMatchObject({ how: 'closed', aToB: 7, bToA: 14 });
  });

  it('a reset on one side resets the other with its reason', async () => {
    const { user, device, done } = await relayed();
    const failed = failure(user);
    device.reset('connection-refused');
    expect((await failed).reason).toBe('connection-refused');
    expect(await done).toMatchObject({ how: 'reset', reason: 'connection-refused' });
  });

  it('a reset by the user reaches the device with its reason', async () => {
    const { user, device, done } = await relayed();
    const failed = failure(device);
    user.reset('cancel');
    expect((await failed).reason).toBe('cancel');
    expect(await done).toMatchObject({ how: 'reset', reason: 'cancel' });
  });

  it('translate() rewrites the reason passed on from one side', async () => {
    const { user, device, done } = await relayed({ translate: (side, reason) => (side === 'b' && reason === 'timeout' ? 'device-offline' : reason) });
    const failed = failure(user);
    device.reset('timeout');
    expect((await failed).reason).toBe('device-offline');
    expect((await done).reason).toBe('device-offline');
  });

  it('reset() from the server cuts both sides', async () => {
    const { user, device, relay, done } = await relayed();
    const a = failure(user);
    const b = failure(device);
    relay.reset('not-permitted');
    expect((await a).reason).toBe('not-permitted');
    expect((await b).reason).toBe('not-permitted');
    expect(await done).toMatchObject({ how: 'reset', reason: 'not-permitted' });
  });

  it('a slow reader holds the writer back: the server buffers a bounded amount, then everything arrives', async () => {
    const { user, device, fromUser, toDevice } = await relayed();
    device.pause();
    const total = 8 * 1024 * 1024;
    const sent = pump(user, total);
    // The device reads nothing: its window fills, the relay pauses the user's stream, whose window fills.
    await waitUntil(() => fromUser.isPaused(), 'the relay to pause the user stream', 5_000);
    await turns(50);
    const stalledAt = user.bytesWritten;
    await turns(50);
    expect(user.bytesWritten).toBe(stalledAt);
    // The user's stream to the server (read by the relay, so its window may grow to the maximum),
    // the device's window (never read, so never grown), the relay's write high-water mark and a
    // frame or two in flight.
    expect(stalledAt).toBeLessThan(DEFAULT_MAX_STREAM_WINDOW_BYTES + DEFAULT_STREAM_WINDOW_BYTES + STREAM_WRITE_HIGH_WATER_BYTES + 2 * MAX_DATA_FRAME_BYTES);
    expect(toDevice.writableLength).toBeLessThanOrEqual(toDevice.writableHighWaterMark + 256 * 1024);
    const got = drain(device);
    device.resume();
    expect((await got).hash).toBe(await sent);
  });

  it('a stream already destroyed when the relay begins resets the other and reports once', async () => {
    const a = new PassThrough();
    const b = new PassThrough();
    const bClosed = new Promise((r) => b.once('close', r));
    a.destroy();
    let calls = 0;
    const result = await new Promise<RelayResult>((resolve) =>
      relayStreams(a, b, {
        onDone: (r) => {
          calls++;
          resolve(r);
        },
      }),
    );
    await bClosed;
    expect(result.how).toBe('reset');
    await turns(5);
    expect(calls).toBe(1);
  });
});

describe('DeviceRules', () => {
  it('denies by default and matches * per part', () => {
    expect(new DeviceRules([]).allows('build1', 'ssh')).toBe(false);
    const rules = new DeviceRules(['build1:ssh', '*:postgres', 'lab:*']);
    expect(rules.allows('build1', 'ssh')).toBe(true);
    expect(rules.allows('build1', 'web')).toBe(false);
    expect(rules.allows('anything', 'postgres')).toBe(true);
    expect(rules.allows('lab', 'web')).toBe(true);
    expect(rules.allows('lab2', 'web')).toBe(false);
  });
});
