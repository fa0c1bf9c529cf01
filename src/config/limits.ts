/**
 * The `[limits]` table: one spec per key with its unit, default and bounds, validated together.
 * Defaults are SECURITY.md's "Defaults" table; the layers keep their own named constants for the
 * same numbers, and the daemon passes these values down. Server-only keys in a client file are
 * errors, so a client never believes it set a limit it cannot enforce.
 */
import type { TableReader } from './fields.js';

/** setTimeout cannot represent more than 2^31 - 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_COUNT = 1_000_000;
/** The mux window field is 32 bits; 1 GiB is far beyond any useful window. */
const MAX_WINDOW_BYTES = 2 ** 30;
/** Smallest useful window: one 16 KiB data chunk. */
const MIN_WINDOW_BYTES = 16 * 1024;

export const HANDSHAKE_TIMEOUT_MS = 5_000;
export const MAX_UNAUTHENTICATED = 256;
export const MAX_UNAUTHENTICATED_PER_IP = 16;
export const HANDSHAKE_RATE_PER_IP_PER_S = 20;
export const HANDSHAKE_BURST_PER_IP = 5;
export const HANDSHAKE_RATE_PER_KEY_PER_S = 10;
export const HANDSHAKE_BURST_PER_KEY = 20;
export const REKEY_AFTER_MS = 120_000;
export const KEEPALIVE_INTERVAL_MS = 10_000;
export const DEAD_AFTER_MS = 30_000;
export const MAX_STREAMS_PER_SESSION = 256;
export const STREAM_OPEN_RATE_PER_S = 20;
export const STREAM_OPEN_BURST = 50;
export const DIALS_IN_FLIGHT = 16;
export const DIAL_TIMEOUT_MS = 10_000;
export const INITIAL_WINDOW_BYTES = 256 * 1024;
/** Key-confirmed sessions one key may hold at once; a newer one beyond is refused. */
export const MAX_SESSIONS_PER_KEY = 8;
/**
 * Streams one key may hold at once across all its sessions (docs/STREAMS.md, "Memory per key").
 * Unset, it follows max_streams_per_session.
 */
export const MAX_STREAMS_PER_KEY = MAX_STREAMS_PER_SESSION;
/** Client: how long an open may wait in the client's own queue for the server's open limits. */
export const OPEN_QUEUE_WAIT_MS = 30_000;

type Role = 'server' | 'client';

interface LimitSpec {
  readonly key: string;
  readonly field: keyof AllLimits;
  readonly fallback: number;
  readonly min: number;
  readonly max: number;
  readonly roles: readonly Role[];
}

/** Every limit either side enforces. Rates are per second, `_ms` durations, `_bytes` sizes. */
export interface AllLimits {
  readonly handshakeTimeoutMs: number;
  readonly maxUnauthenticated: number;
  readonly maxUnauthenticatedPerIp: number;
  readonly handshakeRatePerIp: number;
  readonly handshakeBurstPerIp: number;
  readonly handshakeRatePerKey: number;
  readonly handshakeBurstPerKey: number;
  readonly rekeyAfterMs: number;
  readonly keepaliveIntervalMs: number;
  readonly deadAfterMs: number;
  readonly maxStreamsPerSession: number;
  readonly streamOpenRate: number;
  readonly streamOpenBurst: number;
  readonly dialsInFlight: number;
  readonly dialTimeoutMs: number;
  readonly initialWindowBytes: number;
  readonly maxSessionsPerKey: number;
  readonly maxStreamsPerKey: number;
  readonly openQueueWaitMs: number;
}

/** The limits that apply to a server. */
export type ServerLimits = Omit<AllLimits, 'openQueueWaitMs'>;

/** The limits that apply to a client (it accepts no connections, so no handshake admission). */
export type ClientLimits = Pick<
  AllLimits,
  | 'handshakeTimeoutMs'
  | 'rekeyAfterMs'
  | 'keepaliveIntervalMs'
  | 'deadAfterMs'
  | 'maxStreamsPerSession'
  | 'streamOpenRate'
  | 'streamOpenBurst'
  | 'dialsInFlight'
  | 'dialTimeoutMs'
  | 'initialWindowBytes'
  | 'openQueueWaitMs'
>;

const BOTH: readonly Role[] = ['server', 'client'];
const SERVER: readonly Role[] = ['server'];
const CLIENT: readonly Role[] = ['client'];

const SPECS: readonly LimitSpec[] = [
  { key: 'handshake_timeout_ms', field: 'handshakeTimeoutMs', fallback: HANDSHAKE_TIMEOUT_MS, min: 100, max: MAX_TIMER_MS, roles: BOTH },
  { key: 'max_unauthenticated', field: 'maxUnauthenticated', fallback: MAX_UNAUTHENTICATED, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'max_unauthenticated_per_ip', field: 'maxUnauthenticatedPerIp', fallback: MAX_UNAUTHENTICATED_PER_IP, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'handshake_rate_per_ip', field: 'handshakeRatePerIp', fallback: HANDSHAKE_RATE_PER_IP_PER_S, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'handshake_burst_per_ip', field: 'handshakeBurstPerIp', fallback: HANDSHAKE_BURST_PER_IP, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'handshake_rate_per_key', field: 'handshakeRatePerKey', fallback: HANDSHAKE_RATE_PER_KEY_PER_S, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'handshake_burst_per_key', field: 'handshakeBurstPerKey', fallback: HANDSHAKE_BURST_PER_KEY, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'rekey_after_ms', field: 'rekeyAfterMs', fallback: REKEY_AFTER_MS, min: 1_000, max: MAX_TIMER_MS, roles: BOTH },
  { key: 'keepalive_interval_ms', field: 'keepaliveIntervalMs', fallback: KEEPALIVE_INTERVAL_MS, min: 100, max: MAX_TIMER_MS, roles: BOTH },
  { key: 'dead_after_ms', field: 'deadAfterMs', fallback: DEAD_AFTER_MS, min: 200, max: MAX_TIMER_MS, roles: BOTH },
  { key: 'max_streams_per_session', field: 'maxStreamsPerSession', fallback: MAX_STREAMS_PER_SESSION, min: 1, max: MAX_COUNT, roles: BOTH },
  { key: 'stream_open_rate', field: 'streamOpenRate', fallback: STREAM_OPEN_RATE_PER_S, min: 1, max: MAX_COUNT, roles: BOTH },
  { key: 'stream_open_burst', field: 'streamOpenBurst', fallback: STREAM_OPEN_BURST, min: 1, max: MAX_COUNT, roles: BOTH },
  { key: 'dials_in_flight', field: 'dialsInFlight', fallback: DIALS_IN_FLIGHT, min: 1, max: MAX_COUNT, roles: BOTH },
  { key: 'dial_timeout_ms', field: 'dialTimeoutMs', fallback: DIAL_TIMEOUT_MS, min: 100, max: MAX_TIMER_MS, roles: BOTH },
  { key: 'initial_window_bytes', field: 'initialWindowBytes', fallback: INITIAL_WINDOW_BYTES, min: MIN_WINDOW_BYTES, max: MAX_WINDOW_BYTES, roles: BOTH },
  { key: 'max_sessions_per_key', field: 'maxSessionsPerKey', fallback: MAX_SESSIONS_PER_KEY, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'max_streams_per_key', field: 'maxStreamsPerKey', fallback: MAX_STREAMS_PER_KEY, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'open_queue_wait_ms', field: 'openQueueWaitMs', fallback: OPEN_QUEUE_WAIT_MS, min: 100, max: MAX_TIMER_MS, roles: CLIENT },
];

/** The TOML keys `[limits]` accepts for `role`, for documentation and `check-config`. */
export function limitKeys(role: Role): string[] {
  return SPECS.filter((s) => s.roles.includes(role)).map((s) => s.key);
}

function readLimits(table: TableReader | undefined, role: Role): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of SPECS) {
    if (!spec.roles.includes(role)) {
      if (table?.has(spec.key)) throw table.fail(spec.key, `applies to the ${spec.roles[0]} only`);
      continue;
    }
    out[spec.field] = table === undefined ? spec.fallback : table.int(spec.key, spec.fallback, spec);
  }
  // Unset, a key may hold one session's worth of streams.
  if (role === 'server' && !table?.has('max_streams_per_key')) out.maxStreamsPerKey = out.maxStreamsPerSession!;
  table?.done();
  const fail = (key: string, message: string): Error => (table ? table.fail(key, message) : new Error(message));
  if (out.deadAfterMs! <= out.keepaliveIntervalMs!) {
    throw fail('dead_after_ms', `must exceed keepalive_interval_ms (${out.keepaliveIntervalMs}), got ${out.deadAfterMs}`);
  }
  if (role === 'server' && out.maxUnauthenticatedPerIp! > out.maxUnauthenticated!) {
    throw fail('max_unauthenticated_per_ip', `must not exceed max_unauthenticated (${out.maxUnauthenticated}), got ${out.maxUnauthenticatedPerIp}`);
  }
  return out;
}

/** Reads `[limits]` for a server (absent table: all defaults). */
export function readServerLimits(table: TableReader | undefined): ServerLimits {
  return readLimits(table, 'server') as unknown as ServerLimits;
}

/** Reads `[limits]` for a client; server-only keys are refused. */
export function readClientLimits(table: TableReader | undefined): ClientLimits {
  return readLimits(table, 'client') as unknown as ClientLimits;
}
