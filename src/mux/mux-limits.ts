/**
 * Mux limits: every default as a named constant with its unit, and validation in one place.
 * Wire constants (shared by both peers) live in frame.ts; these are local policy choices.
 */
import { InputError } from '../errors.js';

/** Receive window per stream per direction. */
/**
 * How long the client's open pacer lets an open wait for the server's open limits (client
 * `open_queue_wait_ms`); the pacer paces opens to the mux SETTINGS of this layer.
 */
export const OPEN_QUEUE_WAIT_MS = 30_000;
export const DEFAULT_STREAM_WINDOW_BYTES = 256 * 1024;
/**
 * Ceiling of a stream's window when it grows: a stream whose reader keeps up (at most half the
 * window unread when a grant is due) doubles its window up to this, so bulk transfers stall less
 * and send fewer WINDOW_UPDATE records. Idle and slow streams keep the initial window: growth is
 * credit, not memory, until the peer uses it, and the session bounds the total growth
 * (maxSessionBufferedBytes), so two bulk streams can reach this ceiling at once.
 * At 1 MiB a one-stream bulk transfer still ran out of credit ~3,300 times per GB and left a
 * third of the two cores idle; 8 MiB: ~350 stalls, +25-35% MB/s (bench/profile-notes.md, round 4).
 */
export const DEFAULT_MAX_STREAM_WINDOW_BYTES = 8 * 1024 * 1024;
/** Smallest configurable window: smaller ones turn every transfer into a stream of tiny frames. */
export const MIN_STREAM_WINDOW_BYTES = 16 * 1024;
/** Largest configurable window; credit on the wire is capped at 2^31 - 1 anyway. */
export const MAX_STREAM_WINDOW_BYTES = 16 * 1024 * 1024;
/** Concurrent streams per session, both directions together. */
export const DEFAULT_MAX_STREAMS = 256;
/** Most concurrent streams a session may be configured for. */
export const MAX_STREAMS_CEILING = 65_536;
/** Most remote opens per second, and in a burst, a session may be configured for. */
export const MAX_OPEN_RATE_PER_SECOND = 100_000;
export const MAX_OPEN_BURST = 100_000;
/** Remote stream opens per second (token bucket refill). */
export const DEFAULT_OPEN_RATE_PER_SECOND = 20;
/** Remote stream opens in a burst (token bucket size). */
export const DEFAULT_OPEN_BURST = 50;
/** Remote opens waiting for accept()/reject() at once. */
export const DEFAULT_MAX_PENDING_OPENS = 64;
/** Budget for frames that cost work but carry no data, per second (refill). */
export const DEFAULT_IDLE_FRAMES_PER_SECOND = 100;
/** Budget for frames that cost work but carry no data, in a burst. */
export const DEFAULT_IDLE_FRAME_BURST = 400;
/** No new credit is granted while the session holds more unread bytes than this. */
export const DEFAULT_MAX_SESSION_BUFFERED_BYTES = 16 * 1024 * 1024;

/** Resource limits of one mux session. See docs/STREAMS.md, "Limits". */
export interface MuxLimits {
  /** Receive window per stream per direction, in bytes (the initial, advertised one). */
  readonly streamWindowBytes: number;
  /** A stream whose reader keeps up may grow its window up to this (never below streamWindowBytes). */
  readonly maxStreamWindowBytes: number;
  /** Concurrent streams per session (local and remote opens together). */
  readonly maxStreams: number;
  /** Remote opens per second; beyond the bucket they are refused with reason `limit`. */
  readonly openRatePerSecond: number;
  /** Remote opens allowed in a burst. */
  readonly openBurst: number;
  /** Remote opens not yet accepted or rejected; beyond, refused with reason `limit`. */
  readonly maxPendingOpens: number;
  /** Refill rate of the no-data frame budget (zero window updates, frames for closed streams,
   *  refused opens, resets of pending opens); exhausting it ends the session. */
  readonly idleFramesPerSecond: number;
  /** Size of the no-data frame budget. */
  readonly idleFrameBurst: number;
  /** Session-wide cap on received-but-unread bytes before credit is withheld; also the cap on
   *  the windows' growth beyond streamWindowBytes, summed over the streams. */
  readonly maxSessionBufferedBytes: number;
}

export const DEFAULT_MUX_LIMITS: MuxLimits = Object.freeze({
  streamWindowBytes: DEFAULT_STREAM_WINDOW_BYTES,
  maxStreamWindowBytes: DEFAULT_MAX_STREAM_WINDOW_BYTES,
  maxStreams: DEFAULT_MAX_STREAMS,
  openRatePerSecond: DEFAULT_OPEN_RATE_PER_SECOND,
  openBurst: DEFAULT_OPEN_BURST,
  maxPendingOpens: DEFAULT_MAX_PENDING_OPENS,
  idleFramesPerSecond: DEFAULT_IDLE_FRAMES_PER_SECOND,
  idleFrameBurst: DEFAULT_IDLE_FRAME_BURST,
  maxSessionBufferedBytes: DEFAULT_MAX_SESSION_BUFFERED_BYTES,
});

function checkInteger(name: keyof MuxLimits, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InputError('ERR_INVALID_ARG', `mux limit ${name}: expected an integer in [${min}, ${max}], got ${value}`);
  }
}

/** Fills defaults, validates every field, and returns a frozen object. Throws InputError. */
export function resolveMuxLimits(overrides: Partial<MuxLimits> = {}): MuxLimits {
  const limits: MuxLimits = { ...DEFAULT_MUX_LIMITS, ...overrides };
  checkInteger('streamWindowBytes', limits.streamWindowBytes, MIN_STREAM_WINDOW_BYTES, MAX_STREAM_WINDOW_BYTES);
  checkInteger('maxStreamWindowBytes', limits.maxStreamWindowBytes, MIN_STREAM_WINDOW_BYTES, MAX_STREAM_WINDOW_BYTES);
  checkInteger('maxStreams', limits.maxStreams, 1, MAX_STREAMS_CEILING);
  checkInteger('openRatePerSecond', limits.openRatePerSecond, 1, MAX_OPEN_RATE_PER_SECOND);
  checkInteger('openBurst', limits.openBurst, 1, MAX_OPEN_BURST);
  checkInteger('maxPendingOpens', limits.maxPendingOpens, 1, limits.maxStreams);
  checkInteger('idleFramesPerSecond', limits.idleFramesPerSecond, 1, 1_000_000);
  checkInteger('idleFrameBurst', limits.idleFrameBurst, 1, 1_000_000);
  checkInteger('maxSessionBufferedBytes', limits.maxSessionBufferedBytes, limits.streamWindowBytes, Number.MAX_SAFE_INTEGER);
  return Object.freeze(limits);
}
