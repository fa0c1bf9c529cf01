/**
 * From a config's `[limits]` (config/limits.ts) to the options each layer takes: the one place
 * where config keys meet layer fields. The daemons' composition (cli/) passes the results down.
 */
import { DEFAULT_MAX_PENDING_OPENS, type MuxLimits } from '../mux/mux-limits.js';
import { REJECT_AFTER_MS, type SessionLimits } from '../session/session-limits.js';
import type { ClientLimits, ServerLimits } from './limits.js';

/**
 * Keys are refused this many rekey intervals after they were made, and never sooner than the
 * session's REJECT_AFTER_MS (SECURITY.md: 180 s), so they stay usable while a rekey completes.
 */
export const REJECT_AFTER_PER_REKEY = 1.5;

/** The session layer's limits from a config's [limits] table. */
export function sessionLimitsFrom(limits: ServerLimits | ClientLimits): Partial<SessionLimits> {
  const common: Partial<SessionLimits> = {
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    rekeyAfterMs: limits.rekeyAfterMs,
    rejectAfterMs: Math.max(REJECT_AFTER_MS, Math.ceil(limits.rekeyAfterMs * REJECT_AFTER_PER_REKEY)),
    keepaliveIntervalMs: limits.keepaliveIntervalMs,
    deadAfterMs: limits.deadAfterMs,
  };
  if (!('maxUnauthenticated' in limits)) return common;
  return {
    ...common,
    maxUnauthenticated: limits.maxUnauthenticated,
    maxUnauthenticatedPerAddress: limits.maxUnauthenticatedPerIp,
    handshakesPerSecondPerAddress: limits.handshakeRatePerIp,
    handshakeBurstPerAddress: limits.handshakeBurstPerIp,
    handshakesPerSecondPerKey: limits.handshakeRatePerKey,
    handshakeBurstPerKey: limits.handshakeBurstPerKey,
    maxSessionsPerKey: limits.maxSessionsPerKey,
  };
}

/** The multiplexer's limits from a config's [limits] table. */
export function muxLimitsFrom(limits: ServerLimits | ClientLimits): Partial<MuxLimits> {
  return {
    streamWindowBytes: limits.initialWindowBytes,
    maxStreams: limits.maxStreamsPerSession,
    openRatePerSecond: limits.streamOpenRate,
    openBurst: limits.streamOpenBurst,
    // A burst of opens may all wait for their dial at once; the stream cap bounds it.
    maxPendingOpens: Math.min(limits.maxStreamsPerSession, Math.max(DEFAULT_MAX_PENDING_OPENS, limits.streamOpenBurst)),
  };
}
