/**
 * The order of a stream's outbound frames against a scripted session: every written byte goes out
 * in DATA frames before the FIN, whatever the Writable machinery calls back into the stream while
 * credit or the channel releases it. A FIN ahead of the last data would be a silent truncation at
 * the far end (it ends its socket cleanly on the FIN and has no way to know bytes are missing).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FrameType } from '../../../src/mux/frame.js';
import { MAX_DATA_FRAME_BYTES, MuxStream, type StreamHost } from '../../../src/mux/stream.js';

type Sent = { kind: 'data'; bytes: Buffer } | { kind: 'control'; type: number };

/** A host with a channel that is never blocked and records what the stream sends. */
function scriptedHost(): { host: StreamHost; sent: Sent[] } {
  const sent: Sent[] = [];
  const host: StreamHost = {
    blocked: false,
    sendData: (_id, parts) => sent.push({ kind: 'data', bytes: Buffer.concat(parts.map((p) => Buffer.from(p))) }),
    sendControl: (frame) => sent.push({ kind: 'control', type: frame[0]! }),
    waitForDrain: () => {},
    streamDone: () => {},
    bufferedChanged: () => {},
    canGrant: () => true,
    growWindow: () => 0,
  };
  return { host, sent };
}

/** An accepted (remote-opened) stream whose peer has granted `credit` bytes so far. */
function acceptedStream(host: StreamHost, credit: number): MuxStream {
  const stream = new MuxStream(host, 2, '127.0.0.1:9', 'remote', 256 * 1024, credit);
  stream.on('error', () => {});
  stream._accept();
  return stream;
}

const dataBefore = (sent: readonly Sent[], type: number): Buffer => {
  const at = sent.findIndex((s) => s.kind === 'control' && s.type === type);
  return Buffer.concat(sent.slice(0, at === -1 ? sent.length : at).flatMap((s) => (s.kind === 'data' ? [s.bytes] : [])));
};

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('MuxStream outbound order', () => {
  it('a write released by credit, then a held tail and end(): all data precedes the FIN', async () => {
    // A bulk write waits for credit; a second bulk write and end() queue behind it. The credit
    // that arrives sends the first write and all but the second's short tail; releasing the
    // first write's callback makes the Writable run the second write and then _final at once.
    const { host, sent } = scriptedHost();
    const stream = acceptedStream(host, 0);
    const first = randomBytes(2 * MAX_DATA_FRAME_BYTES);
    const second = randomBytes(MAX_DATA_FRAME_BYTES + 100);
    stream.write(first);
    stream.write(second);
    stream.end();
    await turn();
    expect(dataBefore(sent, FrameType.FIN).length).toBe(0);

    stream._onWindowUpdate(3 * MAX_DATA_FRAME_BYTES);
    await turn();
    // Only 100 bytes lack credit now: no FIN may be out yet.
    expect(sent.some((s) => s.kind === 'control' && s.type === FrameType.FIN)).toBe(false);

    stream._onWindowUpdate(100);
    await turn();
    expect(sent.filter((s) => s.kind === 'control' && s.type === FrameType.FIN)).toHaveLength(1);
    expect(dataBefore(sent, FrameType.FIN).equals(Buffer.concat([first, second]))).toBe(true);
    // Nothing after the FIN.
    const fin = sent.findIndex((s) => s.kind === 'control' && s.type === FrameType.FIN);
    expect(sent.slice(fin + 1).some((s) => s.kind === 'data')).toBe(false);
  });

  it('random write sizes, credit grants and end(): every byte goes out once, in order, before one FIN', async () => {
    for (let run = 0; run < 40; run++) {
      const { host, sent } = scriptedHost();
      const stream = acceptedStream(host, run % 3 === 0 ? 0 : 1 + ((run * 7919) % 70_000));
      const writes = Array.from({ length: 1 + (run % 6) }, (_, i) =>
        randomBytes([10, 5000, MAX_DATA_FRAME_BYTES, MAX_DATA_FRAME_BYTES + 1, 150_000, 70_000][(run + i) % 6]!),
      );
      for (const w of writes) stream.write(w);
      stream.end();
      const total = writes.reduce((n, w) => n + w.length, 0);
      // Grant in uneven slices, each in its own event-loop turn, until the FIN is out.
      for (let i = 0; i < 200 && !sent.some((s) => s.kind === 'control' && s.type === FrameType.FIN); i++) {
        await turn();
        stream._onWindowUpdate(1 + ((i * 104_729 + run) % 90_000));
      }
      await turn();
      expect(
        sent.filter((s) => s.kind === 'control' && s.type === FrameType.FIN),
        `run ${run}`,
      ).toHaveLength(1);
      expect(dataBefore(sent, FrameType.FIN).equals(Buffer.concat(writes)), `run ${run}`).toBe(true);
      expect(sent.filter((s) => s.kind === 'data').reduce((n, s) => n + (s.kind === 'data' ? s.bytes.length : 0), 0)).toBe(total);
    }
  });
});
