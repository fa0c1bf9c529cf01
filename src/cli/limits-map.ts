import type { ClientLimits, ServerLimits } from '../config/limits.js';
import type { MuxLimits } from '../mux/mux-limits.js';
import type { SessionLimits } from '../session/session-limits.js';

/** Keys older than this are refused; it must stay above the rekey interval (SECURITY.md: 180 s). */
const REJECT_AFTER_FLOOR_MS = 180_000;

/** The session layer's limits from a config's [limits] table. */
export function sessionLimitsFrom(l: ServerLimits | ClientLimits): Partial<SessionLimits> {
  const common: Partial<SessionLimits> = {
    handshakeTimeoutMs: l.handshakeTimeoutMs,
    rekeyAfterMs: l.rekeyAfterMs,
    rejectAfterMs: Math.max(REJECT_AFTER_FLOOR_MS, Math.ceil(l.rekeyAfterMs * 1.5)),
    keepaliveIntervalMs: l.keepaliveIntervalMs,
    deadAfterMs: l.deadAfterMs,
  };
  if (!('maxUnauthenticated' in l)) return common;
  return {
    ...common,
    maxUnauthenticated: l.maxUnauthenticated,
    maxUnauthenticatedPerAddress: l.maxUnauthenticatedPerIp,
    handshakesPerSecondPerAddress: l.handshakeRatePerIp,
    handshakeBurstPerAddress: l.handshakeBurstPerIp,
    handshakesPerSecondPerKey: l.handshakeRatePerKey,
    handshakeBurstPerKey: l.handshakeBurstPerKey,
    maxSessionsPerKey: l.maxSessionsPerKey,
  };
}

/** The multiplexer's limits from a config's [limits] table. */
export function muxLimitsFrom(l: ServerLimits | ClientLimits): Partial<MuxLimits> {
  return {
    streamWindowBytes: l.initialWindowBytes,
    maxStreams: l.maxStreamsPerSession,
    openRatePerSecond: l.streamOpenRate,
    openBurst: l.streamOpenBurst,
    // A burst of opens may all wait for their dial at once; the stream cap bounds it.
    maxPendingOpens: Math.min(l.maxStreamsPerSession, Math.max(64, l.streamOpenBurst)),
  };
}
