/**
 * A pure, resumable frame decoder: `push(chunk)` returns every frame completed by the chunk, in
 * order, whatever the chunk boundaries. Every field is validated; a violation throws MuxError
 * 'ERR_MUX_BAD_FRAME' (or 'ERR_MUX_UNKNOWN_FRAME' for an unassigned type) and the decoder
 * becomes unusable, because the byte stream can no longer be trusted (SECURITY.md #9).
 *
 * DATA payloads are views into the pushed chunk when the frame lies inside one chunk (the
 * common case: the sender never splits frames across messages), so the data path copies nothing.
 */
import { MuxError } from '../errors.js';
import {
  FRAME_HEADER_BYTES,
  FrameType,
  MAX_REASON_MESSAGE_BYTES,
  MAX_SETTING_ENTRIES,
  MAX_TARGET_BYTES,
  SETTING_ENTRY_BYTES,
  SETTING_FIELDS,
  isWireTarget,
  type Frame,
  type MuxSettings,
} from './frame.js';
import { goAwayFromWire, reasonFromWire } from './reason.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

function bad(message: string): MuxError {
  return new MuxError('ERR_MUX_BAD_FRAME', message);
}

function u32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

function decodeMessage(bytes: Uint8Array, what: string): string {
  if (bytes.length > MAX_REASON_MESSAGE_BYTES) throw bad(`${what}: message longer than ${MAX_REASON_MESSAGE_BYTES} bytes`);
  try {
    return utf8.decode(bytes);
  } catch {
    throw bad(`${what}: message is not valid UTF-8`);
  }
}

function expectLength(what: string, length: number, expected: number): void {
  if (length !== expected) throw bad(`${what}: payload length ${length}, expected ${expected}`);
}

/** SETTINGS entries: known ids once each with values 1..2^31-1; unknown ids are skipped. */
function parseSettings(p: Uint8Array): MuxSettings {
  if (p.length % SETTING_ENTRY_BYTES !== 0 || p.length > MAX_SETTING_ENTRIES * SETTING_ENTRY_BYTES) {
    throw bad(`SETTINGS: payload length ${p.length}`);
  }
  const out: Record<string, number> = {};
  const seen = new Set<number>();
  for (let at = 0; at < p.length; at += SETTING_ENTRY_BYTES) {
    const id = (p[at]! << 8) | p[at + 1]!;
    const value = u32(p, at + 2);
    if (seen.has(id)) throw bad(`SETTINGS: id ${id} twice`);
    seen.add(id);
    const field = SETTING_FIELDS.find(([known]) => known === id)?.[1];
    if (field === undefined) continue;
    if (value === 0 || value > 0x7fff_ffff) throw bad(`SETTINGS: ${field} ${value}`);
    out[field] = value;
  }
  return out;
}

/** Validates one frame given its type, stream id and payload (already length-checked by the header). */
function parseFrame(type: number, streamId: number, p: Uint8Array): Frame {
  if (type === FrameType.GOAWAY) {
    if (streamId !== 0) throw bad(`GOAWAY on stream ${streamId}`);
    if (p.length < 1) throw bad('GOAWAY: empty payload');
    const code = goAwayFromWire(p[0]!);
    if (code === undefined) throw bad(`GOAWAY: unknown code ${p[0]}`);
    return { type: 'goaway', streamId: 0, code, message: decodeMessage(p.subarray(1), 'GOAWAY') };
  }
  if (type === FrameType.SETTINGS) {
    if (streamId !== 0) throw bad(`SETTINGS on stream ${streamId}`);
    return { type: 'settings', streamId: 0, settings: parseSettings(p) };
  }
  if (streamId === 0) throw bad(`frame type ${type} on stream 0`);
  switch (type) {
    case FrameType.DATA:
      if (p.length === 0) throw bad(`DATA on stream ${streamId}: empty payload`);
      return { type: 'data', streamId, payload: p };
    case FrameType.WINDOW_UPDATE: {
      expectLength('WINDOW_UPDATE', p.length, 4);
      const increment = u32(p, 0);
      if (increment > 0x7fff_ffff) throw bad(`WINDOW_UPDATE: increment ${increment} above 2^31-1`);
      return { type: 'window-update', streamId, increment };
    }
    case FrameType.OPEN: {
      if (p.length < 5 || p.length > 4 + MAX_TARGET_BYTES) throw bad(`OPEN: payload length ${p.length}`);
      const window = u32(p, 0);
      if (window === 0 || window > 0x7fff_ffff) throw bad(`OPEN: window ${window}`);
      const target = Buffer.from(p.buffer, p.byteOffset + 4, p.length - 4).toString('latin1');
      if (!isWireTarget(target)) throw bad('OPEN: target is not printable ASCII');
      return { type: 'open', streamId, window, target };
    }
    case FrameType.OPEN_OK: {
      expectLength('OPEN_OK', p.length, 4);
      const window = u32(p, 0);
      if (window === 0 || window > 0x7fff_ffff) throw bad(`OPEN_OK: window ${window}`);
      return { type: 'open-ok', streamId, window };
    }
    case FrameType.OPEN_FAIL: {
      if (p.length < 1) throw bad('OPEN_FAIL: empty payload');
      const reason = reasonFromWire(p[0]!);
      if (reason === undefined) throw bad(`OPEN_FAIL: unknown reason ${p[0]}`);
      return { type: 'open-fail', streamId, reason, message: decodeMessage(p.subarray(1), 'OPEN_FAIL') };
    }
    case FrameType.FIN:
      expectLength('FIN', p.length, 0);
      return { type: 'fin', streamId };
    case FrameType.RESET: {
      expectLength('RESET', p.length, 1);
      const reason = reasonFromWire(p[0]!);
      if (reason === undefined) throw bad(`RESET: unknown reason ${p[0]}`);
      return { type: 'reset', streamId, reason };
    }
    default:
      throw new MuxError('ERR_MUX_UNKNOWN_FRAME', `unknown frame type ${type}`);
  }
}

/** Checks a complete header; returns the frame's total size in bytes. */
function checkHeader(bytes: Uint8Array, at: number): number {
  const type = bytes[at]!;
  if (type < FrameType.OPEN || type > FrameType.SETTINGS) {
    throw new MuxError('ERR_MUX_UNKNOWN_FRAME', `unknown frame type ${type}`);
  }
  if (bytes[at + 1] !== 0) throw bad(`frame type ${type}: reserved flags ${bytes[at + 1]}`);
  return FRAME_HEADER_BYTES + ((bytes[at + 2]! << 8) | bytes[at + 3]!);
}

function parseAt(bytes: Uint8Array, at: number, total: number): Frame {
  return parseFrame(bytes[at]!, u32(bytes, at + 4), bytes.subarray(at + FRAME_HEADER_BYTES, at + total));
}

/** Resumable decoder of the mux frame stream. */
export class FrameDecoder {
  /** An incomplete frame carried over between chunks: its header, then (sized once known) all of it. */
  readonly #head = new Uint8Array(FRAME_HEADER_BYTES);
  #frame: Uint8Array | undefined;
  /** Bytes of the incomplete frame received so far. */
  #have = 0;
  #failed = false;

  /** Bytes held while waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.#have;
  }

  /**
   * Decodes `chunk` (after any carried-over bytes) and returns the frames it completes. A frame
   * split across chunks is assembled in one buffer of its final size, so byte-by-byte delivery
   * costs linear, not quadratic, copying.
   */
  push(chunk: Uint8Array): Frame[] {
    if (this.#failed) throw new MuxError('ERR_MUX_BAD_FRAME', 'decoder used after a framing error');
    const frames: Frame[] = [];
    try {
      let at = this.#have > 0 ? this.#resume(chunk, frames) : 0;
      while (chunk.length - at >= FRAME_HEADER_BYTES) {
        // Validate the header before waiting for the payload, so garbage fails fast.
        const total = checkHeader(chunk, at);
        if (at + total > chunk.length) break;
        frames.push(parseAt(chunk, at, total));
        at += total;
      }
      if (at < chunk.length) this.#carry(chunk.subarray(at));
    } catch (err) {
      this.#failed = true;
      this.#frame = undefined;
      this.#have = 0;
      throw err;
    }
    return frames;
  }

  /** Feeds the start of `chunk` to the carried-over frame; returns how many bytes it took. */
  #resume(chunk: Uint8Array, frames: Frame[]): number {
    let at = 0;
    if (this.#frame === undefined) {
      const n = Math.min(FRAME_HEADER_BYTES - this.#have, chunk.length);
      this.#head.set(chunk.subarray(0, n), this.#have);
      this.#have += n;
      at = n;
      if (this.#have < FRAME_HEADER_BYTES) return at;
      this.#frame = new Uint8Array(checkHeader(this.#head, 0));
      this.#frame.set(this.#head, 0);
    }
    const frame = this.#frame;
    const n = Math.min(frame.length - this.#have, chunk.length - at);
    frame.set(chunk.subarray(at, at + n), this.#have);
    this.#have += n;
    at += n;
    if (this.#have === frame.length) {
      this.#frame = undefined;
      this.#have = 0;
      frames.push(parseAt(frame, 0, frame.length));
    }
    return at;
  }

  /** Keeps an incomplete tail (copied: a view would pin the caller's whole message). */
  #carry(tail: Uint8Array): void {
    if (tail.length < FRAME_HEADER_BYTES) {
      this.#head.set(tail, 0);
    } else {
      this.#frame = new Uint8Array(checkHeader(tail, 0));
      this.#frame.set(tail, 0);
    }
    this.#have = tail.length;
  }
}
