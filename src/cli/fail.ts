import { TwowayError } from '../errors.js';
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

/** Maps a twoway error code to the documented exit code. */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode;
  if (!(err instanceof TwowayError)) return EXIT.failure;
  switch (err.code) {
    case 'ERR_CONFIG':
    case 'ERR_CONFIG_FILE':
    case 'ERR_KEY_FILE':
    case 'ERR_KEY_FILE_MODE':
    case 'ERR_INVALID_KEY':
    case 'ERR_INVALID_ARG':
    case 'ERR_INVALID_LENGTH':
    case 'ERR_POLICY_BAD_RULE':
      return EXIT.config;
    case 'ERR_SESSION_AUTH':
    case 'ERR_SESSION_SERVER_KEY_MISMATCH':
    case 'ERR_SESSION_PROTOCOL_VERSION':
    case 'ERR_SESSION_DECRYPT':
      return EXIT.auth;
    case 'ERR_MUX_STREAM_REFUSED':
    case 'ERR_POLICY_DENIED':
    case 'ERR_TARGET_INVALID':
      return EXIT.refused;
    case 'ERR_CONTROL':
      return EXIT.unreachable;
    default:
      return EXIT.failure;
  }
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
