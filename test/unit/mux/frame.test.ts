import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MuxError, hasCode } from '../../../src/errors.js';
import { FrameDecoder } from '../../../src/mux/frame-decoder.js';
import {
  FRAME_HEADER_BYTES,
  FrameType,
  MAX_REASON_MESSAGE_BYTES,
  MAX_TARGET_BYTES,
  encodeData,
  encodeDataHeader,
  encodeFrame,
  encodeGoAway,
  encodeOpen,
  encodeOpenFail,
  type Frame,
} from '../../../src/mux/frame.js';
import { sha256 } from '../../helpers/streams.js';
import { REASON_WIRE, type ReasonCode } from '../../../src/mux/reason.js';

const SAMPLES: Frame[] = [
  { type: 'open', streamId: 1, window: 262_144, target: 'example.com:443' },
  { type: 'open', streamId: 0xffff_ffff, window: 1, target: `${'a'.repeat(MAX_TARGET_BYTES - 6)}:65535` },
  { type: 'open-ok', streamId: 2, window: 0x7fff_ffff },
  { type: 'open-fail', streamId: 3, reason: 'connection-refused', message: 'ECONNREFUSED 10.0.0.1:22' },
  { type: 'open-fail', streamId: 5, reason: 'limit', message: '' },
  { type: 'data', streamId: 7, payload: new Uint8Array([1, 2, 3]) },
  { type: 'data', streamId: 9, payload: new Uint8Array(0xffff).fill(0xab) },
  { type: 'window-update', streamId: 11, increment: 131_072 },
  { type: 'window-update', streamId: 11, increment: 0 },
  { type: 'fin', streamId: 13 },
  { type: 'reset', streamId: 15, reason: 'tunnel-closed' },
  { type: 'goaway', streamId: 0, code: 'shutdown', message: 'daemon stopping' },
  { type: 'goaway', streamId: 0, code: 'normal', message: 'é ünïcode' },
  { type: 'settings', streamId: 0, settings: { maxStreams: 256, openRatePerSecond: 20, openBurst: 50, maxPendingOpens: 64 } },
  { type: 'settings', streamId: 0, settings: { openBurst: 0x7fff_ffff } },
  { type: 'settings', streamId: 0, settings: {} },
];

/** Payloads come back as views of whatever chunk type was pushed: compare bytes only. */
const norm = (frames: Frame[]): unknown[] => frames.map((f) => (f.type === 'data' ? { ...f, payload: `${f.payload.length}:${sha256(f.payload)}` } : f));

const all = (frames: Frame[]): Uint8Array => Buffer.concat(frames.map((f) => encodeFrame(f)));

function rejectCode(bytes: Uint8Array): string {
  try {
    new FrameDecoder().push(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(MuxError);
    return (err as MuxError).code;
  }
  return 'accepted';
}

function header(type: number, length: number, streamId: number, flags = 0): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES);
  b[0] = type;
  b[1] = flags;
  b.writeUInt16BE(length, 2);
  b.writeUInt32BE(streamId, 4);
  return b;
}

describe('frame codec', () => {
  it('round-trips every frame type, alone and batched in one chunk', () => {
    for (const frame of SAMPLES) expect(norm(new FrameDecoder().push(encodeFrame(frame)))).toEqual(norm([frame]));
    expect(norm(new FrameDecoder().push(all(SAMPLES)))).toEqual(norm(SAMPLES));
  });

  it('lays out the header as documented', () => {
    const bytes = Buffer.from(encodeOpen(0x01020304, 0x00040000, 'h:1'));
    expect([...bytes]).toEqual([1, 0, 0, 7, 1, 2, 3, 4, 0, 4, 0, 0, 0x68, 0x3a, 0x31]);
    expect([...encodeDataHeader(5, 300)]).toEqual([4, 0, 1, 44, 0, 0, 0, 5]);
    for (const [name, wire] of Object.entries(REASON_WIRE)) expect(encodeOpenFail(1, name as ReasonCode)[8]).toBe(wire);
    expect(REASON_WIRE['tunnel-closed']).toBe(10);
    expect(REASON_WIRE.unverified).toBe(11);
  });

  it('truncates long messages on a UTF-8 boundary', () => {
    const frame = new FrameDecoder().push(encodeGoAway('error', 'é'.repeat(200)))[0]!;
    expect(frame.type === 'goaway' && Buffer.byteLength(frame.message)).toBe(MAX_REASON_MESSAGE_BYTES);
  });

  it('refuses to encode bad input', () => {
    expect(() => encodeOpen(1, 1, 'bad target')).toThrow(/target/);
    expect(() => encodeOpen(0, 1, 'h:1')).toThrow(/stream id/);
    expect(() => encodeOpen(1, 0, 'h:1')).toThrow(/window/);
    expect(() => encodeData(1, new Uint8Array(0))).toThrow(/data length/);
    expect(() => encodeData(1, new Uint8Array(0x10000))).toThrow(/data length/);
  });

  it('lays out SETTINGS as documented and skips unknown ids', () => {
    const bytes = encodeFrame({ type: 'settings', streamId: 0, settings: { maxStreams: 256, openRatePerSecond: 20 } });
    expect(Buffer.from(bytes).toString('hex')).toBe('090000' + '0c' + '00000000' + '0001' + '00000100' + '0002' + '00000014');
    const withUnknown = Buffer.concat([header(FrameType.SETTINGS, 12, 0), Buffer.from([0x12, 0x34, 0, 0, 0, 0, 0, 3, 0, 0, 0, 9])]);
    expect(new FrameDecoder().push(withUnknown)).toEqual([{ type: 'settings', streamId: 0, settings: { openBurst: 9 } }]);
  });

  it('rejects malformed frames with typed codes', () => {
    const cases: Array<[string, Uint8Array, string]> = [
      ['unknown type 0', header(0, 0, 1), 'ERR_MUX_UNKNOWN_FRAME'],
      ['unknown type 10', header(10, 0, 1), 'ERR_MUX_UNKNOWN_FRAME'],
      ['SETTINGS on a stream', header(FrameType.SETTINGS, 0, 1), 'ERR_MUX_BAD_FRAME'],
      ['SETTINGS partial entry', Buffer.concat([header(FrameType.SETTINGS, 5, 0), Buffer.alloc(5)]), 'ERR_MUX_BAD_FRAME'],
      ['SETTINGS value 0', Buffer.concat([header(FrameType.SETTINGS, 6, 0), Buffer.from([0, 2, 0, 0, 0, 0])]), 'ERR_MUX_BAD_FRAME'],
      ['SETTINGS value 2^31', Buffer.concat([header(FrameType.SETTINGS, 6, 0), Buffer.from([0, 3, 0x80, 0, 0, 0])]), 'ERR_MUX_BAD_FRAME'],
      ['SETTINGS id twice', Buffer.concat([header(FrameType.SETTINGS, 12, 0), Buffer.from([0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 2])]), 'ERR_MUX_BAD_FRAME'],
      ['SETTINGS too many entries', Buffer.concat([header(FrameType.SETTINGS, 65 * 6, 0), Buffer.alloc(65 * 6)]), 'ERR_MUX_BAD_FRAME'],
      ['reserved flags', header(FrameType.FIN, 0, 1, 1), 'ERR_MUX_BAD_FRAME'],
      ['FIN with payload', Buffer.concat([header(FrameType.FIN, 1, 1), Buffer.from([0])]), 'ERR_MUX_BAD_FRAME'],
      ['DATA on stream 0', Buffer.concat([header(FrameType.DATA, 1, 0), Buffer.from([0])]), 'ERR_MUX_BAD_FRAME'],
      ['empty DATA', header(FrameType.DATA, 0, 1), 'ERR_MUX_BAD_FRAME'],
      ['GOAWAY on a stream', Buffer.concat([header(FrameType.GOAWAY, 1, 1), Buffer.from([0])]), 'ERR_MUX_BAD_FRAME'],
      ['GOAWAY unknown code', Buffer.concat([header(FrameType.GOAWAY, 1, 0), Buffer.from([99])]), 'ERR_MUX_BAD_FRAME'],
      ['RESET unknown reason', Buffer.concat([header(FrameType.RESET, 1, 1), Buffer.from([0])]), 'ERR_MUX_BAD_FRAME'],
      ['RESET reason 12', Buffer.concat([header(FrameType.RESET, 1, 1), Buffer.from([12])]), 'ERR_MUX_BAD_FRAME'],
      ['WINDOW_UPDATE short', Buffer.concat([header(FrameType.WINDOW_UPDATE, 3, 1), Buffer.alloc(3)]), 'ERR_MUX_BAD_FRAME'],
      ['WINDOW_UPDATE 2^31', Buffer.concat([header(FrameType.WINDOW_UPDATE, 4, 1), Buffer.from([0x80, 0, 0, 0])]), 'ERR_MUX_BAD_FRAME'],
      ['OPEN no target', Buffer.concat([header(FrameType.OPEN, 4, 1), Buffer.from([0, 0, 1, 0])]), 'ERR_MUX_BAD_FRAME'],
      ['OPEN window 0', Buffer.concat([header(FrameType.OPEN, 5, 1), Buffer.from([0, 0, 0, 0, 0x41])]), 'ERR_MUX_BAD_FRAME'],
      ['OPEN control char', Buffer.concat([header(FrameType.OPEN, 6, 1), Buffer.from([0, 0, 1, 0, 0x41, 0x0a])]), 'ERR_MUX_BAD_FRAME'],
      [
        'OPEN target too long',
        Buffer.concat([header(FrameType.OPEN, 4 + MAX_TARGET_BYTES + 1, 1), Buffer.from([0, 0, 1, 0]), Buffer.alloc(MAX_TARGET_BYTES + 1, 0x41)]),
        'ERR_MUX_BAD_FRAME',
      ],
      ['OPEN_OK window 0', Buffer.concat([header(FrameType.OPEN_OK, 4, 1), Buffer.alloc(4)]), 'ERR_MUX_BAD_FRAME'],
      ['OPEN_FAIL bad UTF-8', Buffer.concat([header(FrameType.OPEN_FAIL, 3, 1), Buffer.from([1, 0xc3, 0x28])]), 'ERR_MUX_BAD_FRAME'],
      [
        'OPEN_FAIL message too long',
        Buffer.concat([header(FrameType.OPEN_FAIL, 1 + MAX_REASON_MESSAGE_BYTES + 1, 1), Buffer.from([1]), Buffer.alloc(MAX_REASON_MESSAGE_BYTES + 1, 0x41)]),
        'ERR_MUX_BAD_FRAME',
      ],
    ];
    for (const [name, bytes, code] of cases) expect([name, rejectCode(bytes)]).toEqual([name, code]);
  });

  it('fails fast on a bad header before its payload arrives, and stays failed', () => {
    const decoder = new FrameDecoder();
    expect(() => decoder.push(header(42, 60_000, 1))).toThrow(MuxError);
    expect(() => decoder.push(encodeFrame({ type: 'fin', streamId: 1 }))).toThrow(/after a framing error/);
  });
});

describe('FrameDecoder resumability', () => {
  // Every sample except the 64 KiB one, so that every split point stays cheap to test.
  const SMALL = [
    ...SAMPLES.filter((f) => f.type !== 'data' || f.payload.length < 1000),
    { type: 'data', streamId: 21, payload: new Uint8Array(300).fill(7) } as Frame,
  ];
  const stream = all(SMALL);

  it('decodes the same frames when the bytes are cut at every split point', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = new FrameDecoder();
      const frames = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
      expect(norm(frames)).toEqual(norm(SMALL));
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it('decodes the same frames when fed one byte at a time and in random chunks', () => {
    const decoder = new FrameDecoder();
    const out: Frame[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...decoder.push(stream.subarray(i, i + 1)));
    expect(norm(out)).toEqual(norm(SMALL));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 40 }), (sizes) => {
        const d = new FrameDecoder();
        const got: Frame[] = [];
        let at = 0;
        for (const size of sizes) {
          got.push(...d.push(stream.subarray(at, at + size)));
          at += size;
        }
        got.push(...d.push(stream.subarray(at)));
        expect(norm(got)).toEqual(norm(SMALL));
      }),
      { numRuns: 100 },
    );
  });

  it('assembles a 64 KiB frame fed one byte at a time in linear time', () => {
    const big = all(SAMPLES);
    const decoder = new FrameDecoder();
    const out: Frame[] = [];
    const started = Date.now();
    for (let i = 0; i < big.length; i++) out.push(...decoder.push(big.subarray(i, i + 1)));
    expect(norm(out)).toEqual(norm(SAMPLES));
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('lets only typed MuxErrors escape on random and mutated input (bounded fuzz)', () => {
    const onlyMuxErrors = (chunks: Uint8Array[]): void => {
      const decoder = new FrameDecoder();
      try {
        for (const chunk of chunks) decoder.push(chunk);
      } catch (err) {
        expect(err).toBeInstanceOf(MuxError);
        expect(hasCode(err, 'ERR_MUX_BAD_FRAME') || hasCode(err, 'ERR_MUX_UNKNOWN_FRAME')).toBe(true);
      }
    };
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), onlyMuxErrors), { numRuns: 500 });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(stream.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.nat(stream.length),
        (mutations, cut) => {
          const bytes = Uint8Array.from(stream);
          for (const [at, value] of mutations) bytes[at] = value;
          onlyMuxErrors([bytes.subarray(0, cut), bytes.subarray(cut)]);
        },
      ),
      { numRuns: 500 },
    );
  });
});
