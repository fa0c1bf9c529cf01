/**
 * Error classes with stable codes. Callers branch on `err.code`, never on the message.
 * Each layer owns one union of codes below; add a code to your layer's union only.
 * Messages never contain key material.
 */

/** Input checks at API edges (TypeError/RangeError-like misuse by a caller). */
export type InputErrorCode = 'ERR_INVALID_ARG' | 'ERR_INVALID_LENGTH' | 'ERR_INVALID_KEY';

/** The Noise engine (src/noise/, src/crypto/). */
export type NoiseErrorCode =
  | 'ERR_NOISE_UNSUPPORTED'
  | 'ERR_NOISE_MESSAGE_TOO_LONG'
  | 'ERR_NOISE_MESSAGE_TOO_SHORT'
  | 'ERR_NOISE_DECRYPT'
  | 'ERR_NOISE_NONCE_EXHAUSTED'
  | 'ERR_NOISE_BAD_PSK'
  | 'ERR_NOISE_WRONG_STATE'
  | 'ERR_NOISE_MISSING_KEY'
  | 'ERR_NOISE_INVALID_DH'
  | 'ERR_NOISE_UNUSABLE';

/** The secure session and its transport (src/session/, src/transport/). */
export type SessionErrorCode =
  | 'ERR_SESSION_AUTH'
  | 'ERR_SESSION_UNKNOWN_KEY'
  | 'ERR_SESSION_SERVER_KEY_MISMATCH'
  | 'ERR_SESSION_REPLAY'
  | 'ERR_SESSION_HANDSHAKE_TIMEOUT'
  | 'ERR_SESSION_RATE_LIMITED'
  | 'ERR_SESSION_TOO_MANY_UNAUTHENTICATED'
  | 'ERR_SESSION_RECORD_TOO_LARGE'
  | 'ERR_SESSION_DECRYPT'
  | 'ERR_SESSION_BAD_MESSAGE'
  | 'ERR_SESSION_PROTOCOL_VERSION'
  | 'ERR_SESSION_KEEPALIVE_TIMEOUT'
  | 'ERR_SESSION_CLOSED'
  | 'ERR_TRANSPORT';

/** Stream multiplexing (src/mux/). */
export type MuxErrorCode =
  | 'ERR_MUX_BAD_FRAME'
  | 'ERR_MUX_UNKNOWN_FRAME'
  | 'ERR_MUX_WINDOW_EXCEEDED'
  | 'ERR_MUX_STREAM_LIMIT'
  | 'ERR_MUX_OPEN_RATE'
  | 'ERR_MUX_FLOOD'
  | 'ERR_MUX_STREAM_STATE'
  | 'ERR_MUX_CLOSED'
  | 'ERR_MUX_STREAM_RESET'
  | 'ERR_MUX_STREAM_REFUSED';

/** End-to-end sessions between a user and a device (src/device/, src/device/e2e/). */
export type E2EErrorCode = 'ERR_E2E_HANDSHAKE' | 'ERR_E2E_RECORD' | 'ERR_E2E_TRUNCATED' | 'ERR_E2E_NO_DEVICE_KEY' | 'ERR_DEVICE_TARGET';

/** Access policy, forwards and dialing (src/policy/, src/forward/). */
export type ForwardErrorCode =
  | 'ERR_POLICY_DENIED'
  | 'ERR_POLICY_BAD_RULE'
  | 'ERR_TARGET_INVALID'
  | 'ERR_DIAL_REFUSED'
  | 'ERR_DIAL_UNREACHABLE'
  | 'ERR_DIAL_DNS'
  | 'ERR_DIAL_TIMEOUT'
  | 'ERR_SOCKS_PROTOCOL'
  | 'ERR_POLICY_BAD_PEER'
  | 'ERR_DIAL_LIMIT'
  | 'ERR_FORWARD_ABORTED';

/** Configuration, key files and the CLI (src/config/, src/cli/, src/client/, src/server/, src/control/). */
export type ConfigErrorCode = 'ERR_CONFIG' | 'ERR_CONFIG_FILE' | 'ERR_KEY_FILE' | 'ERR_KEY_FILE_MODE' | 'ERR_CONTROL';

/** User verification (src/verify/): a malformed exchange message, a refused proof. */
export type VerifyErrorCode = 'ERR_VERIFY_BAD_MESSAGE' | 'ERR_VERIFY_REFUSED';

/** Enrollment by invitation (src/enroll/): a damaged token, a join the server refused. */
export type EnrollErrorCode = 'ERR_INVITE_TOKEN' | 'ERR_JOIN_REFUSED';

export type ErrorCode =
  InputErrorCode | NoiseErrorCode | SessionErrorCode | MuxErrorCode | ForwardErrorCode | E2EErrorCode | ConfigErrorCode | VerifyErrorCode | EnrollErrorCode;

/** Base class: every error twoway raises on purpose has a stable `code`. */
export class TwowayError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class InputError extends TwowayError {}
export class NoiseError extends TwowayError {}
export class SessionError extends TwowayError {}
export class MuxError extends TwowayError {}
export class ForwardError extends TwowayError {}
export class ConfigError extends TwowayError {}
export class E2EError extends TwowayError {}
export class VerifyError extends TwowayError {}
export class EnrollError extends TwowayError {}

/** True when `err` is a twoway error carrying `code`. */
export function hasCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof TwowayError && err.code === code;
}

/** Exhaustiveness guard for `switch` statements over unions. */
export function assertNever(value: never, what = 'value'): never {
  throw new TypeError(`unexpected ${what}: ${String(value)}`);
}
