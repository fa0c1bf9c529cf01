/**
 * The commands of user verification (docs/PROTOCOL.md section 13): `twoway login` (through the
 * client daemon's control socket), `twoway unverify` (the server's), and `twoway peers totp`
 * (enrols a peer's authenticator in the server's secrets file).
 */
import readline from 'node:readline';
import type { Command } from 'commander';
import { renderUnicodeCompact } from 'uqr';
import { loadPeers } from '../config/peers.js';
import { loadServerConfig } from '../config/server-config.js';
import { controlRequest } from '../control/control-client.js';
import { ConfigError } from '../errors.js';
import { escapeText } from '../log/escape.js';
import { enrolTotp } from '../verify/totp-secrets.js';
import { EXIT } from './exit-codes.js';
import { CliError } from './fail.js';
import { loginOidc } from './login-oidc.js';

/** The control client's wait for a `verify` answer (an OIDC redemption talks to the provider). */
const VERIFY_CONTROL_TIMEOUT_MS = 40_000;
/** Refusals `twoway login` exits 4 for: the proof itself was refused. */
const REFUSED = new Set(['wrong-code', 'replay', 'locked', 'oidc-failed', 'bad-binding', 'not-enrolled']);

type Answer = Record<string, unknown>;

/** Parses `8h`, `15m`, `90s`, `1d` or a number of milliseconds. */
export function parseDurationMs(text: string, what: string): number {
  const m = /^([0-9]{1,9})(ms|s|m|h|d)?$/.exec(text.trim());
  if (m === null) throw new CliError(`${what}: expected a duration like 8h, 15m, 90s or 1d, got ${JSON.stringify(text.slice(0, 40))}`, EXIT.usage);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

/** One request of the exchange through the client daemon at `socket`. */
function asker(socket: string): (message: Answer) => Promise<Answer> {
  return async (message) => {
    const reply = await controlRequest(socket, { cmd: 'verify', message }, VERIFY_CONTROL_TIMEOUT_MS);
    if (!reply.ok) throw new ConfigError('ERR_CONTROL', `control socket ${socket}: ${String(reply.error)}`);
    return reply.answer as Answer;
  };
}

/** Reads the code: `TOTP code: ` on the terminal, or the first line of stdin when it is not one. */
async function readCode(stdin: NodeJS.ReadStream, stderr: NodeJS.WritableStream): Promise<string> {
  const rl = readline.createInterface({ input: stdin, terminal: false });
  if (stdin.isTTY) stderr.write('TOTP code: ');
  try {
    for await (const line of rl) return line.trim();
  } finally {
    rl.close();
  }
  throw new CliError('login: no code on stdin', EXIT.usage);
}

function refusedError(answer: Answer): CliError {
  const error = String(answer.error);
  const detail = typeof answer.detail === 'string' ? answer.detail : error;
  return new CliError(`login refused (${error}): ${escapeText(detail)}`, REFUSED.has(error) ? EXIT.auth : EXIT.failure);
}

/** `twoway login [--code CODE]`: exit 0 verified (or nothing to verify), 4 refused, 1 otherwise. */
export async function loginCommand(
  socket: string,
  opts: { code?: string },
  io: { stdin: NodeJS.ReadStream; stdout: NodeJS.WritableStream; stderr: NodeJS.WriteStream },
): Promise<void> {
  const ask = asker(socket);
  const query = await ask({ method: 'query' });
  if (query.ok !== true) throw refusedError(query);
  let answer: Answer;
  switch (query.required) {
    case null:
    case undefined:
      io.stdout.write('this key needs no verification\n');
      return;
    case 'totp': {
      const code = opts.code ?? (await readCode(io.stdin, io.stderr));
      answer = await ask({ method: 'totp', code });
      break;
    }
    case 'oidc':
      answer = await loginOidc({ ask, stderr: io.stderr });
      break;
    default:
      throw new CliError(`login: the server asks for an unknown method ${JSON.stringify(String(query.required).slice(0, 40))}`);
  }
  if (answer.ok !== true) throw refusedError(answer);
  io.stdout.write(`verified as ${escapeText(String(answer.identity))} until ${escapeText(String(answer.expires_at))}\n`);
}

/** `twoway unverify --peer NAME | --identity ID` through the server's control socket. */
export async function unverifyCommand(socket: string, target: { peer?: string; identity?: string }, stdout: NodeJS.WritableStream): Promise<void> {
  if ((target.peer === undefined) === (target.identity === undefined))
    throw new CliError('unverify: give exactly one of --peer NAME or --identity ID', EXIT.usage);
  const reply = await controlRequest(socket, { cmd: 'unverify', ...target });
  if (!reply.ok) throw new ConfigError('ERR_CONTROL', `control socket ${socket}: ${String(reply.error)}`);
  stdout.write(`${Number(reply.dropped)} verifications dropped, ${Number(reply.sessionsClosed)} sessions closed\n`);
}

/**
 * `twoway peers totp NAME [--qr]`: creates (or replaces) the peer's TOTP secret; the otpauth://
 * URI goes to stdout once, a QR code of it to stderr on a terminal (or with --qr).
 */
export function peersTotpCommand(
  serverConfigFile: string,
  name: string,
  opts: { qr?: boolean },
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WriteStream,
): void {
  const config = loadServerConfig(serverConfigFile);
  const peer = loadPeers(config.peersFile).peers.find((p) => p.name === name);
  if (peer === undefined) throw new ConfigError('ERR_CONFIG', `${config.peersFile}: no peer named ${name}`);
  const { uri } = enrolTotp(config.verify.totpFile, name, config.verify.totpIssuer);
  stdout.write(`${uri}\n`);
  if (opts.qr === true || stderr.isTTY) stderr.write(`${renderUnicodeCompact(uri)}\n`);
  stderr.write(`enrolled a new TOTP secret for ${name} in ${config.verify.totpFile}; any earlier authenticator entry for ${name} stops working\n`);
  if (peer.verify !== 'totp') stderr.write(`note: ${name} does not require it yet: twoway peers set ${name} --verify totp\n`);
}

/** Registers `login`, `unverify` and `peers totp`. */
export function registerVerifyCommands(
  program: Command,
  peers: Command,
  defaults: { serverConfig: string; controlSocketOf: (opts: { config?: string; socket?: string }) => string },
): void {
  program
    .command('login')
    .description('verify the person at the keyboard to the server (TOTP code or identity provider), through the running client daemon')
    .option('--code <code>', 'the TOTP code (default: prompt on the terminal, or a line on stdin)')
    .option('-c, --config <file>', "the client's config file (to find its control socket; default as for connect)")
    .option('-s, --socket <path>', 'the control socket itself')
    .addHelpText(
      'after',
      '\nExamples:\n  twoway login\n  twoway login --code 123456\n\nExit 0 verified, 4 refused (wrong code, replay, locked), 1 otherwise.\n',
    )
    .action(async (opts: { code?: string; config?: string; socket?: string }) => {
      await loginCommand(defaults.controlSocketOf(opts), opts, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
    });

  program
    .command('unverify')
    .description("drop a verification on the running server and close that key's or person's sessions at once")
    .option('--peer <name>', "the peer whose key's verification goes")
    .option('--identity <id>', 'the person (every key they verified)')
    .option('-c, --config <file>', 'server config file', defaults.serverConfig)
    .option('-s, --socket <path>', "the server's control socket itself")
    .addHelpText('after', '\nExamples:\n  twoway unverify --peer alice\n  twoway unverify --identity alice@corp.example\n')
    .action(async (opts: { peer?: string; identity?: string; config?: string; socket?: string }) => {
      await unverifyCommand(
        defaults.controlSocketOf(opts),
        { ...(opts.peer !== undefined ? { peer: opts.peer } : {}), ...(opts.identity !== undefined ? { identity: opts.identity } : {}) },
        process.stdout,
      );
    });

  peers
    .command('totp')
    .argument('<name>', 'an existing peer')
    .description('enrol a new TOTP secret for the peer: prints the otpauth:// URI once (a QR code on a terminal)')
    .option('--qr', 'print the QR code on stderr even when it is not a terminal')
    .option('-c, --config <file>', 'server config file', defaults.serverConfig)
    .addHelpText('after', '\nExample:\n  twoway peers set alice --verify totp && twoway peers totp alice\n')
    .action((name: string, opts: { qr?: boolean; config: string }) => peersTotpCommand(opts.config, name, opts, process.stdout, process.stderr));
}
