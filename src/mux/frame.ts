/**
 * The mux wire format (docs/STREAMS.md): every frame is an 8-byte header followed by its payload.
 *
 *   0        1        2        4                8
 *   +--------+--------+--------+----------------+---------------
 *   | type   | flags  | length | stream id      | payload (length bytes)
 *   | u8     | u8 = 0 | u16 BE | u32 BE         |
 *
 * Frames carry their own length, so one channel message may hold several frames. Encoders here
 * validate their input (they are fed by local code); the decoder (frame-decoder.ts) validates
 * everything a peer sends.
 */
import { InputError } from '../errors.js';
import { GOAWAY_WIRE, REASON_WIRE, type GoAwayCode, type ReasonCode } from './reason.js';

export const FRAME_HEADER_BYTES = 8;
/** The u16 length field caps any payload. */
export const MAX_FRAME_PAYLOAD_BYTES = 0xffff;
/** A stream target `host:port` (a 255-byte host name, brackets for IPv6, a port) fits easily. */
export const MAX_TARGET_BYTES = 512;
/** Human-readable detail in OPEN_FAIL and GOAWAY. */
export const MAX_REASON_MESSAGE_BYTES = 128;
/** Largest credit a peer may hold on one stream (as HTTP/2: 2^31 - 1). */
export const MAX_WINDOW_CREDIT_BYTES = 0x7fff_ffff;
/** Stream ids are u32; 0 is the session itself. */
export const MAX_STREAM_ID = 0xffff_ffff;
/**
 * Credit the opener may use before OPEN_OK arrives (early data for client-speaks-first
 * protocols). After OPEN_OK the credit is max(this, the window OPEN_OK advertises).
 */
export const OPEN_EARLY_CREDIT_BYTES = 64 * 1024;

/** Frame type wire numbers. */
export const FrameType = Object.freeze({
  OPEN: 0x01,
  OPEN_OK: 0x02,
  OPEN_FAIL: 0x03,
  DATA: 0x04,
  WINDOW_UPDATE: 0x05,
  FIN: 0x06,
  RESET: 0x07,
  GOAWAY: 0x08,
  SETTINGS: 0x09,
} as const);

/**
 * SETTINGS entries (docs/STREAMS.md, "SETTINGS"): the limits the sender enforces on the opens it
 * receives, so that the receiver can pace its own opens. Ids not listed here are ignored.
 */
export const SettingId = Object.freeze({
  MAX_STREAMS: 1,
  OPEN_RATE_PER_SECOND: 2,
  OPEN_BURST: 3,
  MAX_PENDING_OPENS: 4,
} as const);

/** One SETTINGS entry: id u16 | value u32. */
export const SETTING_ENTRY_BYTES = 6;
/** At most this many entries in one SETTINGS frame. */
export const MAX_SETTING_ENTRIES = 64;

/** What a SETTINGS frame says (absent: not stated). */
export interface MuxSettings {
  readonly maxStreams?: number;
  readonly openRatePerSecond?: number;
  readonly openBurst?: number;
  readonly maxPendingOpens?: number;
}

export const SETTING_FIELDS: ReadonlyArray<readonly [number, keyof MuxSettings]> = [
  [SettingId.MAX_STREAMS, 'maxStreams'],
  [SettingId.OPEN_RATE_PER_SECOND, 'openRatePerSecond'],
  [SettingId.OPEN_BURST, 'openBurst'],
  [SettingId.MAX_PENDING_OPENS, 'maxPendingOpens'],
];

/** A decoded frame. */
export type Frame =
  | { readonly type: 'open'; readonly streamId: number; readonly window: number; readonly target: string }
  | { readonly type: 'open-ok'; readonly streamId: number; readonly window: number }
  | { readonly type: 'open-fail'; readonly streamId: number; readonly reason: ReasonCode; readonly message: string }
  | { readonly type: 'data'; readonly streamId: number; readonly payload: Uint8Array }
  | { readonly type: 'window-update'; readonly streamId: number; readonly increment: number }
  | { readonly type: 'fin'; readonly streamId: number }
  | { readonly type: 'reset'; readonly streamId: number; readonly reason: ReasonCode }
  | { readonly type: 'goaway'; readonly streamId: 0; readonly code: GoAwayCode; readonly message: string }
  | { readonly type: 'settings'; readonly streamId: 0; readonly settings: MuxSettings };

const utf8 = new TextEncoder();

function header(type: number, length: number, streamId: number, total = FRAME_HEADER_BYTES + length): Buffer {
  const out = Buffer.allocUnsafe(total);
  out[0] = type;
  out[1] = 0;
  out.writeUInt16BE(length, 2);
  out.writeUInt32BE(streamId, 4);
  return out;
}

function checkStreamId(streamId: number): void {
  if (!Number.isInteger(streamId) || streamId < 1 || streamId > MAX_STREAM_ID) {
    throw new InputError('ERR_INVALID_ARG', `stream id: expected 1..${MAX_STREAM_ID}, got ${streamId}`);
  }
}

function checkU32(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InputError('ERR_INVALID_ARG', `${name}: expected ${min}..${max}, got ${value}`);
  }
}

/** True for a target the wire accepts: 1..MAX_TARGET_BYTES of printable ASCII. */
export function isWireTarget(target: string): boolean {
  if (typeof target !== 'string' || target.length === 0 || target.length > MAX_TARGET_BYTES) return false;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/** Truncates a message to MAX_REASON_MESSAGE_BYTES without splitting a UTF-8 sequence. */
function messageBytes(message: string): Uint8Array {
  const bytes = utf8.encode(message);
  if (bytes.length <= MAX_REASON_MESSAGE_BYTES) return bytes;
  let end = MAX_REASON_MESSAGE_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** OPEN: window u32 | target (printable ASCII). */
export function encodeOpen(streamId: number, window: number, target: string): Uint8Array {
  checkStreamId(streamId);
  checkU32('window', window, 1, MAX_WINDOW_CREDIT_BYTES);
  if (!isWireTarget(target)) throw new InputError('ERR_INVALID_ARG', 'target: expected 1..512 printable ASCII bytes');
  const out = header(FrameType.OPEN, 4 + target.length, streamId);
  out.writeUInt32BE(window, 8);
  out.write(target, 12, 'latin1');
  return out;
}

/** OPEN_OK: window u32. */
export function encodeOpenOk(streamId: number, window: number): Uint8Array {
  checkStreamId(streamId);
  checkU32('window', window, 1, MAX_WINDOW_CREDIT_BYTES);
  const out = header(FrameType.OPEN_OK, 4, streamId);
  out.writeUInt32BE(window, 8);
  return out;
}

/** OPEN_FAIL: reason u8 | message (UTF-8, at most MAX_REASON_MESSAGE_BYTES, truncated). */
export function encodeOpenFail(streamId: number, reason: ReasonCode, message = ''): Uint8Array {
  checkStreamId(streamId);
  const text = messageBytes(message);
  const out = header(FrameType.OPEN_FAIL, 1 + text.length, streamId);
  out[8] = REASON_WIRE[reason];
  out.set(text, 9);
  return out;
}

/** The header of a DATA frame; the payload travels as a separate part (no copy). */
export function encodeDataHeader(streamId: number, length: number): Uint8Array {
  return header(FrameType.DATA, length, streamId, FRAME_HEADER_BYTES);
}

/** A whole DATA frame in one buffer (tests, tooling); the data path uses encodeDataHeader. */
export function encodeData(streamId: number, payload: Uint8Array): Uint8Array {
  checkStreamId(streamId);
  checkU32('data length', payload.length, 1, MAX_FRAME_PAYLOAD_BYTES);
  const out = header(FrameType.DATA, payload.length, streamId);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** WINDOW_UPDATE: increment u32. */
export function encodeWindowUpdate(streamId: number, increment: number): Uint8Array {
  checkStreamId(streamId);
  checkU32('increment', increment, 0, MAX_WINDOW_CREDIT_BYTES);
  const out = header(FrameType.WINDOW_UPDATE, 4, streamId);
  out.writeUInt32BE(increment, 8);
  return out;
}

/** FIN: no payload; the sender will send no more DATA on this stream. */
export function encodeFin(streamId: number): Uint8Array {
  checkStreamId(streamId);
  return header(FrameType.FIN, 0, streamId);
}

/** RESET: reason u8. */
export function encodeReset(streamId: number, reason: ReasonCode): Uint8Array {
  checkStreamId(streamId);
  const out = header(FrameType.RESET, 1, streamId);
  out[8] = REASON_WIRE[reason];
  return out;
}

/** GOAWAY (stream id 0): code u8 | message (UTF-8, truncated to MAX_REASON_MESSAGE_BYTES). */
export function encodeGoAway(code: GoAwayCode, message = ''): Uint8Array {
  const text = messageBytes(message);
  const out = header(FrameType.GOAWAY, 1 + text.length, 0);
  out[8] = GOAWAY_WIRE[code];
  out.set(text, 9);
  return out;
}

/** SETTINGS (stream id 0): entries of id u16 | value u32, values 1..2^31-1, in id order. */
export function encodeSettings(settings: MuxSettings): Uint8Array {
  const entries = SETTING_FIELDS.filter(([, field]) => settings[field] !== undefined);
  const out = header(FrameType.SETTINGS, entries.length * SETTING_ENTRY_BYTES, 0);
  entries.forEach(([id, field], i) => {
    const value = settings[field]!;
    checkU32(field, value, 1, MAX_WINDOW_CREDIT_BYTES);
    out.writeUInt16BE(id, FRAME_HEADER_BYTES + i * SETTING_ENTRY_BYTES);
    out.writeUInt32BE(value, FRAME_HEADER_BYTES + i * SETTING_ENTRY_BYTES + 2);
  });
  return out;
}

/** Encodes any decoded frame (round-trip tests, scripted peers). */
export function encodeFrame(frame: Frame): Uint8Array {
  switch (frame.type) {
    case 'open':
      return encodeOpen(frame.streamId, frame.window, frame.target);
    case 'open-ok':
      return encodeOpenOk(frame.streamId, frame.window);
    case 'open-fail':
      return encodeOpenFail(frame.streamId, frame.reason, frame.message);
    case 'data':
      return encodeData(frame.streamId, frame.payload);
    case 'window-update':
      return encodeWindowUpdate(frame.streamId, frame.increment);
    case 'fin':
      return encodeFin(frame.streamId);
    case 'reset':
      return encodeReset(frame.streamId, frame.reason);
    case 'goaway':
      return encodeGoAway(frame.code, frame.message);
    case 'settings':
      return encodeSettings(frame.settings);
  }
}
