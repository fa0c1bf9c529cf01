import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { DEFAULT_MUX_LIMITS, resolveMuxLimits } from '../../../src/mux/mux-limits.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { ReceiveWindow, SendWindow } from '../../../src/mux/window.js';
import { drain, pump, sessionPair } from '../../helpers/streams.js';
import { waitUntil } from '../../helpers/wait.js';

describe('flow-control windows', () => {
  it('grants credit only once the reader has consumed half the window', () => {
    const w = new ReceiveWindow(1000, 1000);
    w.receive(1000, 1);
    expect(() => w.receive(1, 1)).toThrow(expect.objectContaining({ code: 'ERR_MUX_WINDOW_EXCEEDED' }));
    w.consume(499);
    expect(w.due).toBe(0);
    expect(w.takeGrant()).toBe(0);
    w.consume(1);
    expect(w.takeGrant()).toBe(500);
    expect(w.buffered).toBe(500);
    w.receive(500, 1);
    expect(() => w.receive(1, 1)).toThrow(/window/);
  });

  it('the acceptor credit starts at the early credit and rises to the window on accept', () => {
    const w = new ReceiveWindow(4096, 1024);
    expect(() => w.receive(1025, 3)).toThrow();
    w.raiseLimitTo(4096);
    w.receive(4096, 3);
  });

  it('send credit follows grants, never shrinks, and refuses overflow past 2^31-1', () => {
    const s = new SendWindow(100);
    s.consume(60);
    expect(s.available).toBe(40);
    s.raiseLimitTo(50);
    expect(s.available).toBe(40);
    s.grant(10, 1);
    expect(s.available).toBe(50);
    expect(() => s.grant(0x7fff_ffff, 1)).toThrow(expect.objectContaining({ code: 'ERR_MUX_BAD_FRAME' }));
  });
});

describe('limits', () => {
  it('validates every field in one place and freezes the result', () => {
    expect(resolveMuxLimits()).toEqual(DEFAULT_MUX_LIMITS);
    expect(DEFAULT_MUX_LIMITS.streamWindowBytes).toBe(256 * 1024);
    expect(DEFAULT_MUX_LIMITS.maxStreams).toBe(256);
    expect(Object.isFrozen(resolveMuxLimits({ maxStreams: 10, maxPendingOpens: 5 }))).toBe(true);
    for (const bad of [{ streamWindowBytes: 1024 }, { maxStreams: 0 }, { maxPendingOpens: 1000 }, { openBurst: 1.5 }]) {
      let error: unknown;
      try {
        resolveMuxLimits(bad);
      } catch (err) {
        error = err;
      }
      expect(hasCode(error, 'ERR_INVALID_ARG')).toBe(true);
    }
  });
});

describe('the session-wide buffer cap', () => {
  it('withholds credit while the session holds too many unread bytes, and resumes when they are read', async () => {
    const window = 64 * 1024;
    const { client, requests } = sessionPair({ limits: { streamWindowBytes: window, maxSessionBufferedBytes: window } });
    const hog = client.openStream('hog:1');
    const other = client.openStream('other:1');
    await waitUntil(() => requests.length === 2);
    const hogRemote = requests[0]!.accept();
    const otherRemote = requests[1]!.accept();
    hogRemote.write(Buffer.alloc(window, 1)); // never read: fills the session cap
    await waitUntil(() => hog.bufferedBytes === window);
    const got = drain(other);
    const sent = pump(otherRemote, 4 * window);
    // `other` is read eagerly, yet its credit is withheld once its first window is used up.
    await waitUntil(() => otherRemote.bytesWritten === window);
    await new Promise((resolve) => setImmediate(resolve));
    expect(otherRemote.bytesWritten).toBe(window);
    hog.resume();
    const [hash, result] = await Promise.all([sent, got]);
    expect(result).toEqual({ hash, length: 4 * window });
    client.close();
  });
});

describe('window growth for readers that keep up', () => {
  it('a grant carries the growth; the due threshold widens only from that grant on', () => {
    const w = new ReceiveWindow(1000, 1000);
    w.receive(1000, 1);
    w.consume(500);
    expect(w.takeGrant(1000)).toBe(1500); // 500 consumed + 1000 of growth
    expect(w.size).toBe(2000);
    w.receive(1500, 1); // credit is now consumed (500) + window (2000)
    expect(() => w.receive(1, 1)).toThrow(expect.objectContaining({ code: 'ERR_MUX_WINDOW_EXCEEDED' }));
    w.consume(999);
    expect(w.due).toBe(0); // half of the new window is 1000
    w.consume(1);
    expect(w.takeGrant()).toBe(1000);
  });

  /**
   * Reads `reader` until `readBytes` arrived, then stops reading; resolves with what the reader
   * holds once the writer has stalled: it waits for more room and everything it sent has arrived.
   * (The receiver enforces its window, so what it holds can never exceed the window it granted.)
   */
  async function stallAfter(reader: MuxStream, writer: MuxStream, readBytes: number): Promise<number> {
    let read = 0;
    reader.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read >= readBytes) reader.pause();
    });
    const block = Buffer.alloc(16 * 1024, 7);
    const write = (): void => {
      while (writer.write(block)) {
        /* until backpressure */
      }
    };
    writer.on('drain', write);
    write();
    await waitUntil(() => read >= readBytes, 'reads', 10_000);
    await waitUntil(() => writer.writableNeedDrain && writer.bytesWritten === reader.bytesRead + reader.bufferedBytes, 'the writer to stall', 10_000);
    return reader.bufferedBytes + reader.readableLength;
  }

  it('grows up to maxStreamWindowBytes for an eager reader, and no further', async () => {
    const window = 64 * 1024;
    const max = 256 * 1024;
    const { client, requests } = sessionPair({ limits: { streamWindowBytes: window, maxStreamWindowBytes: max } });
    const s = client.openStream('bulk:1');
    await waitUntil(() => requests.length === 1);
    const remote = requests[0]!.accept();
    const held = await stallAfter(s, remote, 4 * 1024 * 1024);
    expect(held).toBeGreaterThan(window + s.readableHighWaterMark);
    expect(held).toBeLessThanOrEqual(max + s.readableHighWaterMark);
    client.close();
  });

  it('total growth stays within the session budget (maxSessionBufferedBytes)', async () => {
    const window = 64 * 1024;
    const { client, requests } = sessionPair({
      limits: { streamWindowBytes: window, maxStreamWindowBytes: 1024 * 1024, maxSessionBufferedBytes: 2 * window },
    });
    const a = client.openStream('a:1');
    const b = client.openStream('b:1');
    await waitUntil(() => requests.length === 2);
    const ra = requests[0]!.accept();
    const rb = requests[1]!.accept();
    // `a` is read eagerly and stays open: its growth takes the whole budget and keeps it.
    let readA = 0;
    a.on('data', (chunk: Buffer) => (readA += chunk.length));
    const total = 4 * 1024 * 1024;
    await pump(ra, total).catch(() => undefined);
    await waitUntil(() => readA === total, 'a read', 10_000);
    // `b` is read eagerly too, but no budget is left: it holds no more than its initial window.
    const heldB = await stallAfter(b, rb, 2 * 1024 * 1024);
    expect(heldB).toBeLessThanOrEqual(window + b.readableHighWaterMark);
    client.close();
  });
});
