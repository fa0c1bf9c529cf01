import { TwowayError, type ErrorCode } from '../errors.js';
import { escapeText } from '../log/escape.js';
import { EXIT, type ExitCode } from './exit-codes.js';

/** An error the CLI prints as one sentence and exits with, never with a stack trace. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode = EXIT.failure, options?: { cause?: unknown }) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/**
 * The documented exit code (README "Exit codes") of every error code: a Record over the whole
 * ErrorCode union, so a code added to src/errors.ts without an exit code here fails to compile.
 * Most codes are runtime failures (1); the others are what scripts branch on.
 */
export const EXIT_CODE_OF: Readonly<Record<ErrorCode, ExitCode>> = Object.freeze({
  // A configuration, key file or argument is invalid or unsafe.
  ERR_CONFIG: EXIT.config,
  ERR_CONFIG_FILE: EXIT.config,
  ERR_KEY_FILE: EXIT.config,
  ERR_KEY_FILE_MODE: EXIT.config,
  ERR_INVALID_KEY: EXIT.config,
  ERR_INVALID_ARG: EXIT.config,
  ERR_INVALID_LENGTH: EXIT.config,
  ERR_POLICY_BAD_RULE: EXIT.config,
  // The control socket could not be reached.
  ERR_CONTROL: EXIT.unreachable,
  // Authentication failed: refused by the server, or not the pinned server.
  ERR_SESSION_AUTH: EXIT.auth,
  ERR_SESSION_SERVER_KEY_MISMATCH: EXIT.auth,
  ERR_SESSION_PROTOCOL_VERSION: EXIT.auth,
  ERR_SESSION_DECRYPT: EXIT.auth,
  // `twoway login`: the server refused the proof (wrong code, replay, locked, OIDC).
  ERR_VERIFY_REFUSED: EXIT.auth,
  // Enrollment: a damaged invitation token is a bad input (3), a join the server refused is 4.
  ERR_INVITE_TOKEN: EXIT.config,
  ERR_JOIN_REFUSED: EXIT.auth,
  // The tunnel is up but the target was refused: not permitted, refused, unreachable, DNS, timeout.
  ERR_MUX_STREAM_REFUSED: EXIT.refused,
  ERR_POLICY_DENIED: EXIT.refused,
  ERR_TARGET_INVALID: EXIT.refused,
  ERR_DIAL_REFUSED: EXIT.refused,
  ERR_DIAL_UNREACHABLE: EXIT.refused,
  ERR_DIAL_DNS: EXIT.refused,
  ERR_DIAL_TIMEOUT: EXIT.refused,
  // A device target the command line cannot use: malformed, or a device without a [[device]]
  // pin (README: `connect: target "X": expected ...` and `-L "X": ...` exit 2).
  ERR_DEVICE_TARGET: EXIT.usage,
  ERR_E2E_NO_DEVICE_KEY: EXIT.usage,
  // Runtime failures.
  ERR_VERIFY_BAD_MESSAGE: EXIT.failure,
  ERR_NOISE_UNSUPPORTED: EXIT.failure,
  ERR_NOISE_MESSAGE_TOO_LONG: EXIT.failure,
  ERR_NOISE_MESSAGE_TOO_SHORT: EXIT.failure,
  ERR_NOISE_DECRYPT: EXIT.failure,
  ERR_NOISE_NONCE_EXHAUSTED: EXIT.failure,
  ERR_NOISE_BAD_PSK: EXIT.failure,
  ERR_NOISE_WRONG_STATE: EXIT.failure,
  ERR_NOISE_MISSING_KEY: EXIT.failure,
  ERR_NOISE_INVALID_DH: EXIT.failure,
  ERR_NOISE_UNUSABLE: EXIT.failure,
  ERR_SESSION_UNKNOWN_KEY: EXIT.failure,
  ERR_SESSION_REPLAY: EXIT.failure,
  ERR_SESSION_HANDSHAKE_TIMEOUT: EXIT.failure,
  ERR_SESSION_RATE_LIMITED: EXIT.failure,
  ERR_SESSION_TOO_MANY_UNAUTHENTICATED: EXIT.failure,
  ERR_SESSION_RECORD_TOO_LARGE: EXIT.failure,
  ERR_SESSION_BAD_MESSAGE: EXIT.failure,
  ERR_SESSION_KEEPALIVE_TIMEOUT: EXIT.failure,
  ERR_SESSION_CLOSED: EXIT.failure,
  ERR_TRANSPORT: EXIT.failure,
  ERR_MUX_BAD_FRAME: EXIT.failure,
  ERR_MUX_UNKNOWN_FRAME: EXIT.failure,
  ERR_MUX_WINDOW_EXCEEDED: EXIT.failure,
  ERR_MUX_STREAM_LIMIT: EXIT.failure,
  ERR_MUX_OPEN_RATE: EXIT.failure,
  ERR_MUX_FLOOD: EXIT.failure,
  ERR_MUX_STREAM_STATE: EXIT.failure,
  ERR_MUX_CLOSED: EXIT.failure,
  // A reset exits 1 (README, `twoway connect`); so do a broken or truncated inner session.
  ERR_MUX_STREAM_RESET: EXIT.failure,
  ERR_E2E_HANDSHAKE: EXIT.failure,
  ERR_E2E_RECORD: EXIT.failure,
  ERR_E2E_TRUNCATED: EXIT.failure,
  ERR_SOCKS_PROTOCOL: EXIT.failure,
  ERR_POLICY_BAD_PEER: EXIT.failure,
  ERR_DIAL_LIMIT: EXIT.failure,
  ERR_FORWARD_ABORTED: EXIT.failure,
} satisfies Record<ErrorCode, ExitCode>);

/** Maps an error to the documented exit code: a CliError's own, a twoway error's by its code, else 1. */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  if (!(err instanceof TwowayError)) return EXIT.failure;
  return EXIT_CODE_OF[err.code] ?? EXIT.failure;
}

/**
 * Prints `twoway: <message>` to stderr, as one line with every control and format character
 * escaped (a peer chose part of many messages: OPEN_FAIL and GOAWAY texts, close records).
 * Stacks only with TWOWAY_DEBUG=1 (read by main).
 */
export function printError(err: unknown, debug: boolean, stderr: NodeJS.WritableStream = process.stderr): void {
  const message = err instanceof Error ? err.message : String(err);
  stderr.write(`twoway: ${escapeText(message)}\n`);
  if (debug && err instanceof Error && err.stack) stderr.write(`${err.stack.split('\n').map(escapeText).join('\n')}\n`);
}
