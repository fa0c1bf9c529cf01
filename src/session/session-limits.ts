/**
 * Session limits: every number the secure session enforces, with its unit, its default
 * (SECURITY.md "Defaults") and one validation pass. Callers pass a partial object; the session
 * works from the frozen, validated result.
 */
import { InputError } from '../errors.js';
import { DEFAULT_CHANNEL_HIGH_WATER_BYTES } from '../channel.js';

/** Absolute deadline from TCP accept to key confirmation. */
export const HANDSHAKE_TIMEOUT_MS = 5_000;
/** Unauthenticated connections (TCP accepted, key not yet confirmed) at once, in all. */
export const MAX_UNAUTHENTICATED_CONNECTIONS = 256;
/** Unauthenticated connections at once from one source address (IPv6: one /64). */
export const MAX_UNAUTHENTICATED_PER_ADDRESS = 16;
/** Handshake token bucket per source address: refill rate and burst. */
export const HANDSHAKES_PER_SECOND_PER_ADDRESS = 20;
export const HANDSHAKE_BURST_PER_ADDRESS = 5;
/**
 * Handshake token bucket per client key, taken once message 1 has decrypted. An allowlisted key
 * within it gets its per-address token back, so users behind one NAT or proxy address do not
 * spend each other's budget; garbage and unknown keys still pay per address.
 */
export const HANDSHAKES_PER_SECOND_PER_KEY = 10;
export const HANDSHAKE_BURST_PER_KEY = 20;
/** Global handshake budget so a distributed flood cannot starve established sessions of CPU. */
export const HANDSHAKES_PER_SECOND_GLOBAL = 500;
export const HANDSHAKE_BURST_GLOBAL = 100;
/** Fresh in-band key exchange after this long or this many records sent under one key. */
export const REKEY_AFTER_MS = 120_000;
export const REKEY_AFTER_RECORDS = 2 ** 30;
/** Keys older than this are refused: the session closes. */
export const REJECT_AFTER_MS = 180_000;
/** Hard cap on records under one key, far below 2^53 and the Noise nonce limit. */
export const REJECT_AFTER_RECORDS = 2 ** 31;
/** An encrypted empty record after this long without sending. */
export const KEEPALIVE_INTERVAL_MS = 10_000;
/** The peer is dead after this long without an authenticated record. */
export const DEAD_AFTER_MS = 30_000;
/** Key-confirmed sessions one key may hold at once; a newer session beyond is closed at once. */
export const MAX_SESSIONS_PER_KEY = 8;
/** Client: time allowed for proxy, TCP, TLS and the handshake together. */
export const CONNECT_TIMEOUT_MS = 10_000;

export interface SessionLimits {
  readonly handshakeTimeoutMs: number;
  readonly maxUnauthenticated: number;
  readonly maxUnauthenticatedPerAddress: number;
  readonly handshakesPerSecondPerAddress: number;
  readonly handshakeBurstPerAddress: number;
  readonly handshakesPerSecondPerKey: number;
  readonly handshakeBurstPerKey: number;
  readonly handshakesPerSecondGlobal: number;
  readonly handshakeBurstGlobal: number;
  readonly rekeyAfterMs: number;
  readonly rekeyAfterRecords: number;
  readonly rejectAfterMs: number;
  readonly keepaliveIntervalMs: number;
  readonly deadAfterMs: number;
  /** send() returns false above this many buffered bytes; onDrain fires below it. */
  readonly highWaterBytes: number;
  /** Server: key-confirmed sessions of one key at once (docs/STREAMS.md, "Memory per key"). */
  readonly maxSessionsPerKey: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = Object.freeze({
  handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  maxUnauthenticated: MAX_UNAUTHENTICATED_CONNECTIONS,
  maxUnauthenticatedPerAddress: MAX_UNAUTHENTICATED_PER_ADDRESS,
  handshakesPerSecondPerAddress: HANDSHAKES_PER_SECOND_PER_ADDRESS,
  handshakeBurstPerAddress: HANDSHAKE_BURST_PER_ADDRESS,
  handshakesPerSecondPerKey: HANDSHAKES_PER_SECOND_PER_KEY,
  handshakeBurstPerKey: HANDSHAKE_BURST_PER_KEY,
  handshakesPerSecondGlobal: HANDSHAKES_PER_SECOND_GLOBAL,
  handshakeBurstGlobal: HANDSHAKE_BURST_GLOBAL,
  rekeyAfterMs: REKEY_AFTER_MS,
  rekeyAfterRecords: REKEY_AFTER_RECORDS,
  rejectAfterMs: REJECT_AFTER_MS,
  keepaliveIntervalMs: KEEPALIVE_INTERVAL_MS,
  deadAfterMs: DEAD_AFTER_MS,
  highWaterBytes: DEFAULT_CHANNEL_HIGH_WATER_BYTES,
  maxSessionsPerKey: MAX_SESSIONS_PER_KEY,
});

/** Timers beyond this would overflow setTimeout (2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

function positiveInt(name: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new InputError('ERR_INVALID_ARG', `limits.${name}: expected an integer in 1..${max}, got ${String(value)}`);
  }
  return value;
}

/** Merges `partial` over the defaults, validates every field and their relations, and freezes. */
export function resolveSessionLimits(partial: Partial<SessionLimits> = {}): SessionLimits {
  for (const key of Object.keys(partial)) {
    if (!(key in DEFAULT_SESSION_LIMITS)) throw new InputError('ERR_INVALID_ARG', `limits.${key}: unknown limit`);
  }
  const merged: Record<string, unknown> = { ...DEFAULT_SESSION_LIMITS };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) merged[k] = v;
  const ms = (k: keyof SessionLimits): number => positiveInt(k, merged[k], MAX_TIMER_MS);
  const count = (k: keyof SessionLimits, max: number): number => positiveInt(k, merged[k], max);
  const limits: SessionLimits = {
    handshakeTimeoutMs: ms('handshakeTimeoutMs'),
    maxUnauthenticated: count('maxUnauthenticated', 1_000_000),
    maxUnauthenticatedPerAddress: count('maxUnauthenticatedPerAddress', 1_000_000),
    handshakesPerSecondPerAddress: count('handshakesPerSecondPerAddress', 1_000_000),
    handshakeBurstPerAddress: count('handshakeBurstPerAddress', 1_000_000),
    handshakesPerSecondPerKey: count('handshakesPerSecondPerKey', 1_000_000),
    handshakeBurstPerKey: count('handshakeBurstPerKey', 1_000_000),
    handshakesPerSecondGlobal: count('handshakesPerSecondGlobal', 1_000_000),
    handshakeBurstGlobal: count('handshakeBurstGlobal', 1_000_000),
    rekeyAfterMs: ms('rekeyAfterMs'),
    rekeyAfterRecords: count('rekeyAfterRecords', REJECT_AFTER_RECORDS - 1),
    rejectAfterMs: ms('rejectAfterMs'),
    keepaliveIntervalMs: ms('keepaliveIntervalMs'),
    deadAfterMs: ms('deadAfterMs'),
    highWaterBytes: count('highWaterBytes', 2 ** 40),
    maxSessionsPerKey: count('maxSessionsPerKey', 1_000_000),
  };
  if (limits.rejectAfterMs <= limits.rekeyAfterMs) {
    throw new InputError('ERR_INVALID_ARG', `limits.rejectAfterMs (${limits.rejectAfterMs}) must exceed rekeyAfterMs (${limits.rekeyAfterMs})`);
  }
  if (limits.deadAfterMs <= limits.keepaliveIntervalMs) {
    throw new InputError('ERR_INVALID_ARG', `limits.deadAfterMs (${limits.deadAfterMs}) must exceed keepaliveIntervalMs (${limits.keepaliveIntervalMs})`);
  }
  if (limits.maxUnauthenticatedPerAddress > limits.maxUnauthenticated) {
    throw new InputError('ERR_INVALID_ARG', 'limits.maxUnauthenticatedPerAddress must not exceed maxUnauthenticated');
  }
  return Object.freeze(limits);
}
