/**
 * Reason codes carried by OPEN_FAIL and RESET frames, GOAWAY codes, and the stream error type
 * that exposes them. Wire numbers are part of the protocol (docs/STREAMS.md); never renumber.
 */
import { MuxError, type MuxErrorCode } from '../errors.js';

/** Why a stream was refused or reset. */
export type ReasonCode =
  | 'not-permitted'
  | 'connection-refused'
  | 'unreachable'
  | 'dns-failure'
  | 'timeout'
  | 'limit'
  | 'device-offline'
  | 'error'
  | 'cancel'
  | 'tunnel-closed'
  /** The peer must verify its user first (`twoway login`, docs/PROTOCOL.md section 13). */
  | 'unverified';

/** Wire numbers of the stream reason codes (one byte). */
export const REASON_WIRE: Readonly<Record<ReasonCode, number>> = Object.freeze({
  'not-permitted': 1,
  'connection-refused': 2,
  unreachable: 3,
  'dns-failure': 4,
  timeout: 5,
  limit: 6,
  'device-offline': 7,
  error: 8,
  cancel: 9,
  'tunnel-closed': 10,
  unverified: 11,
});

/** Why a whole mux session ended (GOAWAY). */
export type GoAwayCode = 'normal' | 'shutdown' | 'protocol-error' | 'flood' | 'error';

/** Wire numbers of the GOAWAY codes (one byte). */
export const GOAWAY_WIRE: Readonly<Record<GoAwayCode, number>> = Object.freeze({
  normal: 0,
  shutdown: 1,
  'protocol-error': 2,
  flood: 3,
  error: 4,
});

function invert<T extends string>(table: Readonly<Record<T, number>>): ReadonlyMap<number, T> {
  const out = new Map<number, T>();
  for (const key of Object.keys(table) as T[]) out.set(table[key], key);
  return out;
}

const REASON_BY_WIRE = invert(REASON_WIRE);
const GOAWAY_BY_WIRE = invert(GOAWAY_WIRE);

/** The reason code for a wire number, or undefined when the number is not assigned. */
export function reasonFromWire(value: number): ReasonCode | undefined {
  return REASON_BY_WIRE.get(value);
}

/** The GOAWAY code for a wire number, or undefined when the number is not assigned. */
export function goAwayFromWire(value: number): GoAwayCode | undefined {
  return GOAWAY_BY_WIRE.get(value);
}

/** True when `value` names a stream reason code. */
export function isReasonCode(value: unknown): value is ReasonCode {
  return typeof value === 'string' && Object.hasOwn(REASON_WIRE, value);
}

/** `value` when it names a stream reason code, else `error` (a reason from outside the protocol). */
export function toReasonCode(value: unknown): ReasonCode {
  return isReasonCode(value) ? value : 'error';
}

/** The reason code an error carries in its `reason` field (MuxStreamError, dial errors), else `error`. */
export function reasonOfError(err: unknown): ReasonCode {
  return toReasonCode(typeof err === 'object' && err !== null ? (err as { reason?: unknown }).reason : undefined);
}

/**
 * A stream-level failure: refused open, reset by the peer, or the session going away. `reason`
 * tells a forwarder what to report (e.g. a SOCKS5 reply code) without parsing the message.
 */
export class MuxStreamError extends MuxError {
  readonly reason: ReasonCode;
  /** The text the peer sent with its refusal (OPEN_FAIL), '' when none: relayed as is, never parsed out of `message`. */
  readonly detail: string;
  constructor(code: MuxErrorCode, message: string, reason: ReasonCode, options?: { cause?: unknown; detail?: string }) {
    super(code, message, options);
    this.reason = reason;
    this.detail = options?.detail ?? '';
  }
}
