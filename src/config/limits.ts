/**
 * The `[limits]` table: one spec per key with its unit, default and bounds, validated together.
 * The defaults and the bounds are not written here: each is the constant of the layer that
 * enforces it (session, mux, forward, client), so config and layer cannot drift apart
 * (test/unit/config/limits.test.ts checks the mapped result against every layer's defaults).
 * Layers never import config. Server-only keys in a client file are errors, so a client never
 * believes it set a limit it cannot enforce.
 */
import { DEFAULT_DIALS_IN_FLIGHT } from '../forward/dial-limiter.js';
import { DIAL_TIMEOUT_MS } from '../forward/dial-target.js';
import {
  DEFAULT_MAX_STREAMS,
  DEFAULT_OPEN_BURST,
  DEFAULT_OPEN_RATE_PER_SECOND,
  DEFAULT_STREAM_WINDOW_BYTES,
  MAX_OPEN_BURST,
  MAX_OPEN_RATE_PER_SECOND,
  MAX_STREAMS_CEILING,
  MAX_STREAM_WINDOW_BYTES,
  MIN_STREAM_WINDOW_BYTES,
  OPEN_QUEUE_WAIT_MS,
} from '../mux/mux-limits.js';
import {
  DEAD_AFTER_MS,
  HANDSHAKE_BURST_PER_ADDRESS,
  HANDSHAKE_BURST_PER_KEY,
  HANDSHAKES_PER_SECOND_PER_ADDRESS,
  HANDSHAKES_PER_SECOND_PER_KEY,
  HANDSHAKE_TIMEOUT_MS,
  KEEPALIVE_INTERVAL_MS,
  MAX_SESSIONS_PER_KEY,
  MAX_UNAUTHENTICATED_CONNECTIONS,
  MAX_UNAUTHENTICATED_PER_ADDRESS,
  REKEY_AFTER_MS,
} from '../session/session-limits.js';
import type { TableReader } from './fields.js';
import { REJECT_AFTER_PER_REKEY } from './limits-map.js';

/** setTimeout cannot represent more than 2^31 - 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_COUNT = 1_000_000;
/** Keys are refused REJECT_AFTER_PER_REKEY x rekey_after_ms after they were made: a timer too. */
const MAX_REKEY_AFTER_MS = Math.floor(MAX_TIMER_MS / REJECT_AFTER_PER_REKEY);
/**
 * Streams one key may hold at once across all its sessions (docs/STREAMS.md, "Memory per key").
 * Unset, it follows max_streams_per_session.
 */
export const MAX_STREAMS_PER_KEY = DEFAULT_MAX_STREAMS;

export type Role = 'server' | 'client';

/** One `[limits]` key: its field, default, bounds and the sides it applies to. */
export interface LimitSpec {
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

/** Every `[limits]` key. */
export const LIMIT_SPECS: readonly LimitSpec[] = [
  { key: 'handshake_timeout_ms', field: 'handshakeTimeoutMs', fallback: HANDSHAKE_TIMEOUT_MS, min: 100, max: MAX_TIMER_MS, roles: BOTH },
  { key: 'max_unauthenticated', field: 'maxUnauthenticated', fallback: MAX_UNAUTHENTICATED_CONNECTIONS, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'max_unauthenticated_per_ip', field: 'maxUnauthenticatedPerIp', fallback: MAX_UNAUTHENTICATED_PER_ADDRESS, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'handshake_rate_per_ip', field: 'handshakeRatePerIp', fallback: HANDSHAKES_PER_SECOND_PER_ADDRESS, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'handshake_burst_per_ip', field: 'handshakeBurstPerIp', fallback: HANDSHAKE_BURST_PER_ADDRESS, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'handshake_rate_per_key', field: 'handshakeRatePerKey', fallback: HANDSHAKES_PER_SECOND_PER_KEY, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'handshake_burst_per_key', field: 'handshakeBurstPerKey', fallback: HANDSHAKE_BURST_PER_KEY, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'rekey_after_ms', field: 'rekeyAfterMs', fallback: REKEY_AFTER_MS, min: 1_000, max: MAX_REKEY_AFTER_MS, roles: BOTH },
  { key: 'keepalive_interval_ms', field: 'keepaliveIntervalMs', fallback: KEEPALIVE_INTERVAL_MS, min: 100, max: MAX_TIMER_MS, roles: BOTH },
  { key: 'dead_after_ms', field: 'deadAfterMs', fallback: DEAD_AFTER_MS, min: 200, max: MAX_TIMER_MS, roles: BOTH },
  { key: 'max_streams_per_session', field: 'maxStreamsPerSession', fallback: DEFAULT_MAX_STREAMS, min: 1, max: MAX_STREAMS_CEILING, roles: BOTH },
  { key: 'stream_open_rate', field: 'streamOpenRate', fallback: DEFAULT_OPEN_RATE_PER_SECOND, min: 1, max: MAX_OPEN_RATE_PER_SECOND, roles: BOTH },
  { key: 'stream_open_burst', field: 'streamOpenBurst', fallback: DEFAULT_OPEN_BURST, min: 1, max: MAX_OPEN_BURST, roles: BOTH },
  { key: 'dials_in_flight', field: 'dialsInFlight', fallback: DEFAULT_DIALS_IN_FLIGHT, min: 1, max: MAX_COUNT, roles: BOTH },
  { key: 'dial_timeout_ms', field: 'dialTimeoutMs', fallback: DIAL_TIMEOUT_MS, min: 100, max: MAX_TIMER_MS, roles: BOTH },
  {
    key: 'initial_window_bytes',
    field: 'initialWindowBytes',
    fallback: DEFAULT_STREAM_WINDOW_BYTES,
    min: MIN_STREAM_WINDOW_BYTES,
    max: MAX_STREAM_WINDOW_BYTES,
    roles: BOTH,
  },
  { key: 'max_sessions_per_key', field: 'maxSessionsPerKey', fallback: MAX_SESSIONS_PER_KEY, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'max_streams_per_key', field: 'maxStreamsPerKey', fallback: MAX_STREAMS_PER_KEY, min: 1, max: MAX_COUNT, roles: SERVER },
  { key: 'open_queue_wait_ms', field: 'openQueueWaitMs', fallback: OPEN_QUEUE_WAIT_MS, min: 100, max: MAX_TIMER_MS, roles: CLIENT },
];

/** The TOML keys `[limits]` accepts for `role`, for documentation and `check-config`. */
export function limitKeys(role: Role): string[] {
  return LIMIT_SPECS.filter((s) => s.roles.includes(role)).map((s) => s.key);
}

function readLimits(table: TableReader | undefined, role: Role): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of LIMIT_SPECS) {
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
