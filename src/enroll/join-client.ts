/**
 * The employee's side of a join (docs/PROTOCOL.md §12): a new key generated here (the private key
 * never leaves this machine), a join handshake keyed by the token, one request and one answer,
 * and only then the files: DIR/client.key (0600) and DIR/client.toml with the server's URL and key
 * pinned. A refusal or a failure leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { readClientTable } from '../config/client-config.js';
import { writeSecretFile } from '../config/key-file.js';
import { PEER_NAME } from '../config/peers.js';
import { parseToml } from '../config/toml-file.js';
import { encodeKey, generateKeyPair, wipe } from '../crypto/keys.js';
import { ConfigError, EnrollError } from '../errors.js';
import { connectSecure } from '../session/connect-secure.js';
import type { SecureSession } from '../session/secure-session.js';
import { invitePsk, type InviteToken } from './invite-token.js';
import { JOIN_VERSION, MAX_JOIN_MESSAGE_BYTES, type JoinAnswer } from './join-server.js';

export const JOIN_CONFIG_NAME = 'client.toml';
export const JOIN_KEY_NAME = 'client.key';
/** From the start of the handshake to the server's answer. */
export const JOIN_TIMEOUT_MS = 20_000;
const CONFIG_FILE_MODE = 0o600;
const MAX_TOTP_URI_CHARS = 2_048;

export interface JoinOptions {
  readonly token: InviteToken;
  readonly dir: string;
  /** Replace existing client.toml and client.key (the new key is the one the server registers). */
  readonly force: boolean;
  /** Told to the server for its log (this machine's host name). */
  readonly hostname: string;
  readonly logger: Logger;
  readonly timeoutMs?: number;
}

export interface JoinResult {
  readonly configFile: string;
  readonly keyFile: string;
  readonly publicKey: string;
  readonly name: string;
  readonly pending: boolean;
  readonly verify?: 'totp' | 'oidc';
  /** The TOTP secret as an otpauth:// URI: shown once, never written to a file. */
  readonly totpUri?: string;
}

export function joinConfigText(serverUrl: string, serverPublicKey: string, name: string): string {
  return `# twoway client configuration, written by 'twoway join' (peer ${name}). Check it with: twoway check-config FILE
# Relative paths are resolved against the folder of this file. Unknown keys are errors.
# Every key is described in the example configs/client.toml of the twoway package.

[client]
server_url = ${JSON.stringify(serverUrl)}
server_public_key = ${JSON.stringify(serverPublicKey)}
# This client's private key (0600), made by 'twoway join'; never send it to anyone.
private_key_file = ${JSON.stringify(JOIN_KEY_NAME)}

# Local ports forwarded through the tunnel, e.g.:
# [[forward]]
# listen = "127.0.0.1:2222"
# target = "git.corp.example:22"
`;
}

function exists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new ConfigError('ERR_CONFIG_FILE', `${file}: cannot be checked (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
}

/** Joins with `token`; writes the files only after the server registered the key. */
export async function joinWithToken(options: JoinOptions): Promise<JoinResult> {
  const dir = path.resolve(options.dir);
  const configFile = path.join(dir, JOIN_CONFIG_NAME);
  const keyFile = path.join(dir, JOIN_KEY_NAME);
  const serverPublicKey = encodeKey(options.token.serverPublicKey);
  // The same checks as every load, before anything goes on the wire.
  readClientTable(configFile, parseToml(configFile, joinConfigText(options.token.url, serverPublicKey, 'x')));
  if (!options.force) {
    const present = [configFile, keyFile].filter(exists);
    if (present.length > 0) {
      throw new ConfigError(
        'ERR_CONFIG_FILE',
        `${present.join(' and ')} exist${present.length === 1 ? 's' : ''} already; nothing was sent or written (--dir elsewhere, or --force to replace them)`,
      );
    }
  }

  const pair = generateKeyPair();
  const psk = invitePsk(options.token.secret);
  let answer: JoinAnswer;
  try {
    const session = await connectSecure({
      url: options.token.url,
      staticKeyPair: pair,
      serverPublicKeys: [options.token.serverPublicKey],
      psk,
      join: { inviteId: options.token.id },
      logger: options.logger,
      connectTimeoutMs: options.timeoutMs ?? JOIN_TIMEOUT_MS,
    });
    answer = await exchange(session, { v: JOIN_VERSION, hostname: options.hostname.slice(0, 255) }, options.timeoutMs ?? JOIN_TIMEOUT_MS);
  } catch (err) {
    wipe(pair.privateKey);
    throw err;
  } finally {
    wipe(psk);
  }
  if (!answer.ok) {
    wipe(pair.privateKey);
    throw new EnrollError('ERR_JOIN_REFUSED', `the server refused the join (${answer.error ?? 'refused'}): ${answer.detail ?? 'no detail'}`);
  }
  const name = answer.name!;
  try {
    writeFiles(dir, configFile, keyFile, joinConfigText(options.token.url, serverPublicKey, name), pair.privateKey);
  } finally {
    wipe(pair.privateKey);
  }
  return {
    configFile,
    keyFile,
    publicKey: encodeKey(pair.publicKey),
    name,
    pending: answer.pending === true,
    ...(answer.verify !== undefined ? { verify: answer.verify } : {}),
    ...(answer.totp_uri !== undefined ? { totpUri: answer.totp_uri } : {}),
  };
}

/** Sends the request and waits for the one answer (the server closes after it). */
function exchange(session: SecureSession, request: object, timeoutMs: number): Promise<JoinAnswer> {
  return new Promise<JoinAnswer>((resolve, reject) => {
    let done = false;
    const settle = (fn: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn();
      session.close({ code: 'normal' });
    };
    const timer = setTimeout(() => settle(() => reject(new EnrollError('ERR_JOIN_REFUSED', `no answer from the server within ${timeoutMs} ms`))), timeoutMs);
    session.onMessage((message) => {
      const parsed = parseAnswer(message);
      settle(() =>
        typeof parsed === 'string' ? reject(new EnrollError('ERR_JOIN_REFUSED', `the server's join answer is malformed: ${parsed}`)) : resolve(parsed),
      );
    });
    session.onClose((reason) => {
      settle(() =>
        reject(
          new EnrollError(
            'ERR_JOIN_REFUSED',
            `the server closed the join session without an answer (${reason.code}${reason.message ? `: ${reason.message}` : ''})`,
          ),
        ),
      );
    });
    session.send(new TextEncoder().encode(JSON.stringify(request)));
  });
}

function parseAnswer(message: Uint8Array): JoinAnswer | string {
  if (message.length > MAX_JOIN_MESSAGE_BYTES) return `longer than ${MAX_JOIN_MESSAGE_BYTES} bytes`;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(message));
  } catch {
    return 'not UTF-8 JSON';
  }
  const a = value as Record<string, unknown> | null;
  if (a === null || typeof a !== 'object' || typeof a.ok !== 'boolean') return 'no "ok"';
  if (!a.ok) {
    return {
      ok: false,
      ...(typeof a.error === 'string' ? { error: a.error.slice(0, 64) as JoinAnswer['error'] } : {}),
      ...(typeof a.detail === 'string' ? { detail: a.detail.slice(0, 512) } : {}),
    };
  }
  if (typeof a.name !== 'string' || !PEER_NAME.test(a.name)) return 'no peer name';
  if (typeof a.pending !== 'boolean') return 'no "pending"';
  if (a.verify !== undefined && a.verify !== 'totp' && a.verify !== 'oidc') return 'unknown "verify"';
  if (a.totp_uri !== undefined && (typeof a.totp_uri !== 'string' || !a.totp_uri.startsWith('otpauth://') || a.totp_uri.length > MAX_TOTP_URI_CHARS)) {
    return 'malformed "totp_uri"';
  }
  return {
    ok: true,
    name: a.name,
    pending: a.pending,
    ...(a.verify !== undefined ? { verify: a.verify } : {}),
    ...(a.totp_uri !== undefined ? { totp_uri: a.totp_uri } : {}),
  };
}

/** The key and the config, each written to a private temporary file and renamed into place. */
function writeFiles(dir: string, configFile: string, keyFile: string, text: string, privateKey: Uint8Array): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const suffix = `${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const keyTemp = path.join(dir, `.${JOIN_KEY_NAME}.${suffix}`);
  const configTemp = path.join(dir, `.${JOIN_CONFIG_NAME}.${suffix}`);
  const encoded = Buffer.from(`${encodeKey(privateKey)}\n`, 'utf8');
  try {
    writeSecretFile(keyTemp, encoded);
    fs.writeFileSync(configTemp, text, { mode: CONFIG_FILE_MODE, flag: 'wx' });
    fs.chmodSync(configTemp, CONFIG_FILE_MODE);
    fs.renameSync(keyTemp, keyFile);
    fs.renameSync(configTemp, configFile);
  } catch (err) {
    throw new ConfigError(
      'ERR_CONFIG_FILE',
      `${dir}: the client files could not be written (${(err as NodeJS.ErrnoException).code ?? 'error'}); the server registered the key, ask the administrator to remove the peer and invite again`,
      { cause: err },
    );
  } finally {
    encoded.fill(0);
    fs.rmSync(keyTemp, { force: true });
    fs.rmSync(configTemp, { force: true });
  }
}
