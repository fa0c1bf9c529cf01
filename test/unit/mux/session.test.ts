import { afterEach, describe, expect, it } from 'vitest';
import type { MessageChannel } from '../../../src/channel.js';
import { MuxError, hasCode } from '../../../src/errors.js';
import type { MuxStreamError } from '../../../src/mux/reason.js';
import { MuxSession } from '../../../src/mux/session.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { encodeSettings } from '../../../src/mux/frame.js';
import { TRANSPORTS, type ChannelPairFactory } from '../../helpers/channel-pairs.js';
import { ScriptedPeer, drain, pump, quiet, sessionPair as pairOver, type SessionPair } from '../../helpers/streams.js';
import { waitUntil } from '../../helpers/wait.js';

const MiB = 1024 * 1024;

function errorOf(stream: MuxStream): Promise<MuxStreamError> {
  return new Promise((resolve) => stream.once('error', (err) => resolve(err as MuxStreamError)));
}

/** The suite's sessions and channels, over one transport; everything is torn down after each test. */
function over(transport: ChannelPairFactory): {
  sessionPair: (options?: Omit<NonNullable<Parameters<typeof pairOver>[0]>, 'channels'>) => Promise<SessionPair>;
  channelPair: () => Promise<[MessageChannel, MessageChannel]>;
} {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });
  const channelPair = async (): Promise<[MessageChannel, MessageChannel]> => {
    const pair = await transport();
    stops.push(pair.stop);
    return pair.channels;
  };
  return { sessionPair: async (options = {}) => pairOver({ ...options, channels: await channelPair() }), channelPair };
}

/**
 * A fence instead of a pause: opens a stream and waits until the peer's answer is back. Both ends
 * handle frames in order on one channel, so whatever either side sent before has arrived by then.
 */
async function fence(client: MuxSession, requests: readonly { accept(): MuxStream }[]): Promise<void> {
  const seen = requests.length;
  const probe = quiet(client.openStream('fence:1'));
  await waitUntil(() => requests.length > seen, 'the fence open');
  quiet(requests[requests.length - 1]!.accept());
  await new Promise((resolve) => probe.once('open', resolve));
  probe.destroy();
}

describe.each(TRANSPORTS)('MuxSession over %s', (_name, transport) => {
  const { sessionPair, channelPair } = over(transport);
  it('transfers 32 MiB each way on one stream, sha256 intact, with half-close both ways', async () => {
    const { client, server, requests } = await sessionPair();
    const stream = client.openStream('echo.test:7');
    await waitUntil(() => requests.length === 1);
    const remote = requests[0]!.accept();
    const [upHash, downHash, up, down] = await Promise.all([pump(stream, 32 * MiB), pump(remote, 32 * MiB), drain(remote), drain(stream)]);
    expect(up).toEqual({ hash: upHash, length: 32 * MiB });
    expect(down).toEqual({ hash: downHash, length: 32 * MiB });
    await waitUntil(() => client.streamCount === 0 && server.streamCount === 0);
    expect(stream.bytesWritten).toBe(32 * MiB);
    expect(stream.bytesRead).toBe(32 * MiB);
    client.close();
  });

  it('half-close: each side ends its writable while the other direction keeps working', async () => {
    const { client, requests } = await sessionPair();
    const stream = client.openStream('h:1');
    stream.end('request');
    await waitUntil(() => requests.length === 1);
    const remote = requests[0]!.accept();
    const got = drain(remote);
    expect((await got).length).toBe(7);
    expect(remote.state).toBe('remote-closed');
    remote.write('reply after the client FIN');
    const back: Buffer[] = [];
    stream.on('data', (c: Buffer) => back.push(c));
    await waitUntil(() => Buffer.concat(back).toString() === 'reply after the client FIN');
    expect(stream.state).toBe('local-closed');
    const ended = new Promise((resolve) => stream.once('end', resolve));
    remote.end();
    await ended;
    await waitUntil(() => stream.state === 'closed' && remote.state === 'closed');
    client.close();
  });

  it('runs hundreds of concurrent streams, each with its own bytes', async () => {
    const { client, server } = await sessionPair({
      limits: { openBurst: 500, openRatePerSecond: 500, maxPendingOpens: 256 },
      onStreamRequest: (req) => {
        const s = req.accept();
        s.pipe(s); // echo
      },
    });
    const results = await Promise.all(
      Array.from({ length: 250 }, async (_, i) => {
        const s = client.openStream(`svc-${i}:80`);
        const payload = Buffer.alloc(10_000 + i, i & 0xff);
        const echoed = drain(s);
        s.end(payload);
        const { length } = await echoed;
        return length === payload.length;
      }),
    );
    expect(results.every(Boolean)).toBe(true);
    expect(client.stats.streamsOpened).toBe(250);
    await waitUntil(() => server.streamCount === 0 && client.streamCount === 0);
    client.close();
  });

  it('a reader that never reads does not stall another stream, and its buffer stays within its window', async () => {
    const window = 256 * 1024;
    const { client, requests } = await sessionPair();
    const slow = client.openStream('slow:1');
    const fast = client.openStream('fast:1');
    await waitUntil(() => requests.length === 2);
    const slowRemote = requests[0]!.accept();
    const fastRemote = requests[1]!.accept();
    // The slow reader never reads: the writer can push at most a window (plus Readable's buffer).
    const block = Buffer.alloc(64 * 1024, 1);
    const slowWriter = (): void => {
      while (slowRemote.write(block));
    };
    slowWriter();
    slowRemote.on('drain', slowWriter);
    const [hash, got] = await Promise.all([pump(fastRemote, 24 * MiB), drain(fast)]);
    expect(got).toEqual({ hash, length: 24 * MiB });
    expect(slow.bufferedBytes).toBeLessThanOrEqual(window);
    expect(slow.bufferedBytes + slow.readableLength).toBeLessThanOrEqual(window + slow.readableHighWaterMark);
    expect(slowRemote.bytesWritten).toBeLessThanOrEqual(window);
    expect(slowRemote.bytesWritten).toBeGreaterThan(window / 2);
    // Reading resumes the slow stream: window updates follow consumption.
    const before = slowRemote.bytesWritten;
    slow.resume();
    await waitUntil(() => slowRemote.bytesWritten > before + window);
    client.close();
  });

  it('holdCredit withholds window updates while the reader keeps reading, and releasing sends them', async () => {
    const window = 256 * 1024;
    const { client, requests } = await sessionPair();
    const local = client.openStream('sink:1');
    await waitUntil(() => requests.length === 1);
    const remote = requests[0]!.accept();
    // The reader reads everything (as a forwarder whose socket still takes writes would), but
    // its sink cannot drain: credit is held, so the writer stops at one window.
    local.holdCredit(true);
    let read = 0;
    local.on('data', (chunk: Buffer) => (read += chunk.length));
    const block = Buffer.alloc(64 * 1024, 2);
    const writer = (): void => {
      while (remote.write(block));
    };
    writer();
    remote.on('drain', writer);
    await waitUntil(() => read === window);
    await fence(client, requests);
    expect(remote.bytesWritten).toBe(window);
    expect(read).toBe(window);
    local.holdCredit(false);
    await waitUntil(() => read > 2 * window);
    client.close();
  });

  it('reset carries its reason to the peer and leaves other streams working', async () => {
    const { client, requests } = await sessionPair();
    const a = client.openStream('a:1');
    const b = client.openStream('b:1');
    await waitUntil(() => requests.length === 2);
    const ra = requests[0]!.accept();
    const rb = requests[1]!.accept();
    const failure = errorOf(ra);
    a.reset('timeout');
    const err = await failure;
    expect(err).toBeInstanceOf(MuxError);
    expect(err.code).toBe('ERR_MUX_STREAM_RESET');
    expect(err.reason).toBe('timeout');
    expect(a.state).toBe('reset');
    // destroy(err) on the acceptor side sends reason 'error'
    const bErr = errorOf(b);
    const echoed = drain(rb).catch((err: unknown) => err);
    b.write('still fine');
    await waitUntil(() => rb.bytesRead === 10);
    rb.destroy(new Error('target socket died'));
    expect((await bErr).reason).toBe('error');
    expect(await echoed).toMatchObject({ message: 'target socket died' });
    expect(client.streamCount).toBe(0);
    expect(client.closed).toBe(false);
    client.close();
  });

  it('a refused open fails the opener with ERR_MUX_STREAM_REFUSED, its reason and message', async () => {
    const { client } = await sessionPair({
      onStreamRequest: (req) => setImmediate(() => req.reject('connection-refused', 'ECONNREFUSED 127.0.0.1:9')),
    });
    const stream = client.openStream('127.0.0.1:9');
    let opened = false;
    stream.on('open', () => (opened = true));
    const err = await errorOf(stream);
    expect(err.code).toBe('ERR_MUX_STREAM_REFUSED');
    expect(err.reason).toBe('connection-refused');
    expect(err.message).toContain('ECONNREFUSED 127.0.0.1:9');
    expect(opened).toBe(false);
    await waitUntil(() => client.streamCount === 0);
    client.close();
  });

  it('refuses every remote open when there is no handler (not-permitted)', async () => {
    const [a, b] = await channelPair();
    const client = new MuxSession(a, { role: 'client' });
    new MuxSession(b, { role: 'server' });
    const err = await errorOf(client.openStream('x:1'));
    expect(err.reason).toBe('not-permitted');
    client.close();
  });

  it('data written before accept is buffered by the acceptor and delivered once it accepts', async () => {
    const { client, requests } = await sessionPair();
    const stream = client.openStream('smtp:25');
    let opened = false;
    stream.on('open', () => (opened = true));
    stream.write('EHLO early\r\n');
    stream.end();
    await waitUntil(() => requests.length === 1);
    await fence(client, requests); // the acceptor "dials" meanwhile
    expect(opened).toBe(false);
    const remote = requests[0]!.accept();
    const chunks: Buffer[] = [];
    remote.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((resolve) => remote.once('end', resolve));
    expect(Buffer.concat(chunks).toString()).toBe('EHLO early\r\n');
    await waitUntil(() => opened);
    client.close();
  });

  it('both roles open streams, with odd ids from the client and even ids from the server', async () => {
    const serverRequests: number[] = [];
    const [a, b] = await channelPair();
    const client = new MuxSession(a, {
      role: 'client',
      onStreamRequest: (req) => {
        serverRequests.push(req.id);
        quiet(req.accept()).end('from client');
      },
    });
    const server = new MuxSession(b, { role: 'server', onStreamRequest: (req) => quiet(req.accept()).end() });
    const s1 = quiet(client.openStream('x:1'));
    const s2 = quiet(client.openStream('x:2'));
    const down = server.openStream('device-local:22');
    expect([s1.id, s2.id, down.id]).toEqual([1, 3, 2]);
    const got = await drain(down);
    expect(got.length).toBe('from client'.length);
    expect(serverRequests).toEqual([2]);
    s1.destroy();
    s2.destroy();
    client.close();
  });

  it('a cancelled request aborts its signal and accept() throws', async () => {
    const { client, requests } = await sessionPair();
    const stream = client.openStream('slow-dial:1');
    await waitUntil(() => requests.length === 1);
    const req = requests[0]!;
    const signal = req.signal;
    stream.destroy();
    await waitUntil(() => req.cancelled);
    expect(signal.aborted).toBe(true);
    expect(() => req.accept()).toThrow(expect.objectContaining({ code: 'ERR_MUX_STREAM_RESET' }));
    client.close();
  });

  it('when the channel closes without GOAWAY, every stream errors with ERR_MUX_CLOSED (tunnel-closed)', async () => {
    const { client, server, channels, requests } = await sessionPair();
    const streams = [client.openStream('a:1'), client.openStream('b:1')];
    await waitUntil(() => requests.length === 2);
    const remotes = requests.map((r) => r.accept());
    const all = [...streams, ...remotes].map(errorOf);
    const closes = [new Promise((r) => client.onClose(r)), new Promise((r) => server.onClose(r))];
    channels[0].close({ code: 'transport-closed' });
    for (const err of await Promise.all(all)) {
      expect(err.code).toBe('ERR_MUX_CLOSED');
      expect(err.reason).toBe('tunnel-closed');
    }
    expect(await closes[0]).toMatchObject({ code: 'tunnel-closed' });
    expect(client.streamCount + server.streamCount).toBe(0);
    // Opening on a closed session fails the same way, asynchronously.
    expect((await errorOf(client.openStream('c:1'))).code).toBe('ERR_MUX_CLOSED');
  });

  it('close() sends GOAWAY: the peer sees the code and its streams end with ERR_MUX_CLOSED', async () => {
    const { client, server, requests } = await sessionPair();
    const s = client.openStream('a:1');
    await waitUntil(() => requests.length === 1);
    const remote = requests[0]!.accept();
    const remoteErr = errorOf(remote);
    const localErr = errorOf(s);
    const info = new Promise((r) => server.onClose(r));
    client.close('shutdown', 'bye');
    expect(await info).toMatchObject({ code: 'shutdown', remote: true, message: 'bye' });
    expect((await remoteErr).code).toBe('ERR_MUX_CLOSED');
    expect((await localErr).code).toBe('ERR_MUX_CLOSED');
  });

  it('enforces the local stream limit and rejects malformed targets', async () => {
    const { client } = await sessionPair({ limits: { maxStreams: 2, maxPendingOpens: 2 } });
    client.openStream('a:1');
    client.openStream('b:1');
    const err = await errorOf(client.openStream('c:1'));
    expect(hasCode(err, 'ERR_MUX_STREAM_LIMIT')).toBe(true);
    expect(() => client.openStream('bad target')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    expect(() => client.openStream('')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    client.close();
  });

  it('keeps idle streams light (well under 8 KiB of heap each)', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    const { client, server, requests } = await sessionPair({ limits: { maxStreams: 2000, maxPendingOpens: 2000, openBurst: 2000 } });
    const count = 1000;
    gc?.();
    const before = process.memoryUsage().heapUsed;
    const held: MuxStream[] = [];
    for (let i = 0; i < count; i++) held.push(client.openStream(`idle-${i}:1`));
    await waitUntil(() => requests.length === count);
    for (const r of requests) held.push(r.accept());
    await waitUntil(() => held.slice(0, count).every((s) => s.state === 'open'));
    gc?.();
    const perStreamPair = (process.memoryUsage().heapUsed - before) / count;
    // Both ends of each stream (two MuxStreams) live in this process.
    expect(perStreamPair / 2).toBeLessThan(8 * 1024);
    client.close();
    expect(server.closed || client.closed).toBe(true);
  });

  it('leaves no timers running after close', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    // Counted once the transport is up: a WebSocket's own timers (its closing handshake, the HTTP
    // server's checks) are not the mux's, and the closing handshake's ends once the socket closes.
    const channels = await channelPair();
    const baseline = timers();
    const { client, server, requests } = pairOver({ channels });
    const s = client.openStream('t:1');
    await waitUntil(() => requests.length === 1);
    requests[0]!.accept();
    s.write('x');
    s.on('error', () => {});
    client.close();
    await waitUntil(() => server.closed);
    await waitUntil(() => timers() <= baseline, `no more than ${baseline} timers (${timers()} now)`, 5_000);
  });
});

describe.each(TRANSPORTS)('SETTINGS over %s', (_name, transport) => {
  const { sessionPair, channelPair } = over(transport);
  it('the advertising side sends its open limits first (the stream cap lowered by advertise.maxStreams); the other side adopts them', async () => {
    const [a, b] = await channelPair();
    const peer = new ScriptedPeer(a);
    const server = new MuxSession(b, { role: 'server', limits: { openRatePerSecond: 7, openBurst: 9, maxPendingOpens: 5 }, advertise: { maxStreams: 100 } });
    await waitUntil(() => peer.of('settings').length === 1);
    expect(peer.frames[0]).toEqual({ type: 'settings', streamId: 0, settings: { maxStreams: 100, openRatePerSecond: 7, openBurst: 9, maxPendingOpens: 5 } });
    server.close();

    const { client, server: plain } = await sessionPair();
    expect(client.peerSentSettings).toBe(false);
    expect(client.peerLimits).toEqual({ maxStreams: 256, openRatePerSecond: 20, openBurst: 50, maxPendingOpens: 64 });
    plain.close();
    const [c, d] = await channelPair();
    const advertiser = new MuxSession(c, { role: 'server', limits: { openBurst: 3 }, advertise: {} });
    const learner = new MuxSession(d, { role: 'client' });
    await waitUntil(() => learner.peerSentSettings);
    expect(learner.peerLimits).toEqual({ maxStreams: 256, openRatePerSecond: 20, openBurst: 3, maxPendingOpens: 64 });
    advertiser.close();
  });

  it('charges every SETTINGS after the first to the no-data budget', async () => {
    const [a, b] = await channelPair();
    const peer = new ScriptedPeer(a);
    let closed: string | undefined;
    const session = new MuxSession(b, { role: 'client', limits: { idleFrameBurst: 10 } });
    session.onClose((info) => (closed = info.error?.code));
    for (let i = 0; i < 30 && closed === undefined; i++) peer.send(encodeSettings({ openBurst: 10 + i }));
    await waitUntil(() => closed !== undefined);
    expect(closed).toBe('ERR_MUX_FLOOD');
  });
});
