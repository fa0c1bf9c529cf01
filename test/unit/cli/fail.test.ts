import { describe, expect, it } from 'vitest';
import { CliError, EXIT_CODE_OF, exitCodeFor } from '../../../src/cli/fail.js';
import { EXIT } from '../../../src/cli/exit-codes.js';
import { ConfigError, E2EError, ForwardError, MuxError, SessionError, TwowayError, type ErrorCode } from '../../../src/errors.js';

// README "Exit codes": the table scripts branch on. The Record is exhaustive by type (a new code
// without an exit code does not compile); this checks the values the README documents.
describe('exit codes of error codes', () => {
  it.each<[ErrorCode, number]>([
    ['ERR_CONFIG', 3],
    ['ERR_KEY_FILE_MODE', 3],
    ['ERR_POLICY_BAD_RULE', 3],
    ['ERR_INVALID_KEY', 3],
    ['ERR_SESSION_AUTH', 4],
    ['ERR_SESSION_SERVER_KEY_MISMATCH', 4],
    ['ERR_SESSION_PROTOCOL_VERSION', 4],
    ['ERR_MUX_STREAM_REFUSED', 5],
    ['ERR_POLICY_DENIED', 5],
    ['ERR_DIAL_REFUSED', 5],
    ['ERR_DIAL_UNREACHABLE', 5],
    ['ERR_DIAL_DNS', 5],
    ['ERR_DIAL_TIMEOUT', 5],
    ['ERR_CONTROL', 6],
    ['ERR_E2E_NO_DEVICE_KEY', 2],
    ['ERR_DEVICE_TARGET', 2],
    ['ERR_MUX_STREAM_RESET', 1],
    ['ERR_E2E_TRUNCATED', 1],
    ['ERR_TRANSPORT', 1],
    ['ERR_INVITE_TOKEN', 3],
    ['ERR_JOIN_REFUSED', 4],
  ])('%s exits %i', (code, exit) => {
    expect(exitCodeFor(new TwowayError(code, 'x'))).toBe(exit);
  });

  it('every code has a documented exit code, whatever its class', () => {
    const documented = new Set<number>(Object.values(EXIT));
    for (const [code, exit] of Object.entries(EXIT_CODE_OF)) {
      expect(documented.has(exit), code).toBe(true);
      for (const Class of [ConfigError, E2EError, ForwardError, MuxError, SessionError]) expect(exitCodeFor(new Class(code as ErrorCode, 'x'))).toBe(exit);
    }
  });

  it('a CliError keeps its own exit code; anything else is a failure', () => {
    expect(exitCodeFor(new CliError('bad flag', EXIT.usage))).toBe(2);
    expect(exitCodeFor(new Error('boom'))).toBe(1);
    expect(exitCodeFor('text')).toBe(1);
  });
});
