/**
 * connectSecure: the initiator. IK needs the server's static key before the first message, so the
 * client tries its pinned keys in order, one dial each. A 401 may name the server's key (public,
 * unauthenticated): it is used only to skip straight to that pinned key, or to say plainly which
 * key the server presented. The session opens with the WebSocket; the client then sends one
 * encrypted keepalive at once, which is the server's key confirmation.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { constantTimeEqual, fingerprint } from '../crypto/keys.js';
import { InputError, SessionError, TwowayError } from '../errors.js';
import { dialTransport, UpgradeRefusedError } from '../transport/ws-dial.js';
import { PROTOCOL_HEADER } from '../transport/ws-listen.js';
import type { HandshakeState } from '../noise/handshake-state.js';
import { decodeBase64Url, encodeBase64Url } from './base64url.js';
import { consumeResponse, createInitiation, type CompletedHandshake } from './handshake.js';
import { CONNECT_TIMEOUT_MS, resolveSessionLimits, type SessionLimits } from './session-limits.js';
import { RecordType } from './record.js';
import type { StaticKeyPair } from './rekey.js';
import { RecordLayer, type SecureSession } from './secure-session.js';
import {
  HANDSHAKE_HEADER,
  MAX_HANDSHAKE_HEADER_CHARS,
  MAX_RECORD_BYTES,
  MUX_SETTINGS_HEADER,
  SERVER_KEY_HEADER,
  WIRE,
  ZERO_PSK,
  type WireProtocol,
} from './wire.js';
import { EVENTS } from '../log/events.js';

export interface ConnectSecureOptions {
  /** ws:// or wss:// URL including the path. */
  readonly url: string;
  readonly staticKeyPair: StaticKeyPair;
  /** Pinned server keys, tried in order (rotation: list the new key next to the old one). */
  readonly serverPublicKeys: readonly Uint8Array[];
  readonly psk?: Uint8Array;
  /** http://host:port of an HTTP CONNECT proxy. */
  readonly proxy?: string;
  readonly tls?: { readonly ca?: string | Buffer; readonly rejectUnauthorized?: boolean };
  readonly limits?: Partial<SessionLimits>;
  readonly logger: Logger;
  /** Everything up to the open session, across all pinned keys. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /**
   * A join by invitation (docs/PROTOCOL.md §12): message 1 carries the invite id; `psk` must be
   * the invitation's and `serverPublicKeys` the token's key.
   */
  readonly join?: { readonly inviteId: Uint8Array };
}

const JOIN_REFUSED = 'the server refused the invitation: it is unknown, expired, already used or revoked (ask for a new one)';

/** Connects, authenticates both ends and resolves with an established session. */
export async function connectSecure(opts: ConnectSecureOptions): Promise<SecureSession> {
  return connectSecureWithWireProtocol(opts, WIRE);
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return typeof v === 'string' ? v : undefined;
}

function checkOptions(opts: ConnectSecureOptions): void {
  if (opts.serverPublicKeys.length === 0) throw new InputError('ERR_INVALID_ARG', 'serverPublicKeys: at least one pinned key is required');
  for (const k of opts.serverPublicKeys) {
    if (!(k instanceof Uint8Array) || k.length !== 32) throw new InputError('ERR_INVALID_KEY', 'serverPublicKeys: expected 32-byte keys');
  }
  if (opts.psk !== undefined && opts.psk.length !== 32) throw new InputError('ERR_INVALID_LENGTH', `psk: expected 32 bytes, got ${opts.psk.length}`);
}

/** @internal connectSecure for a given wire protocol (tests build other versions). */
export async function connectSecureWithWireProtocol(opts: ConnectSecureOptions, wire: WireProtocol): Promise<SecureSession> {
  checkOptions(opts);
  const limits = resolveSessionLimits(opts.limits);
  const deadline = performance.now() + (opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
  const pinned = opts.serverPublicKeys;
  const expected = pinned.map((k) => fingerprint(k)).join(', ');
  const tried = new Set<number>();
  let next: number | undefined = 0;
  let lastError: TwowayError | undefined;

  while (next !== undefined) {
    const index: number = next;
    tried.add(index);
    const serverKey = pinned[index]!;
    const remaining = Math.floor(deadline - performance.now());
    if (remaining <= 0) throw new SessionError('ERR_SESSION_HANDSHAKE_TIMEOUT', `connect to ${opts.url} timed out`);
    try {
      return await connectOnce(opts, wire, limits, serverKey, remaining);
    } catch (err) {
      if (!(err instanceof UpgradeRefusedError)) throw err;
      const refusal = interpretRefusal(err, wire);
      if (refusal !== undefined) throw refusal;
      // 401: authentication refused. Did the server say which key it holds?
      const presentedText = headerValue(err.headers, SERVER_KEY_HEADER);
      let presented: Uint8Array | undefined;
      try {
        presented = presentedText === undefined ? undefined : decodeBase64Url(presentedText, 64, 'server key header');
      } catch {
        presented = undefined;
      }
      if (presented !== undefined && presented.length === 32) {
        if (constantTimeEqual(presented, serverKey)) {
          if (opts.join !== undefined) throw new SessionError('ERR_SESSION_AUTH', JOIN_REFUSED);
          throw new SessionError('ERR_SESSION_AUTH', `server ${opts.url} refused this client (unknown or revoked key, or a psk is required)`);
        }
        const match = pinned.findIndex((k, i) => !tried.has(i) && constantTimeEqual(k, presented));
        if (match === -1) {
          throw new SessionError('ERR_SESSION_SERVER_KEY_MISMATCH', `server presented key ${fingerprint(presented)}, expected one of: ${expected}`);
        }
        next = match;
        continue;
      }
      lastError = new SessionError('ERR_SESSION_AUTH', opts.join !== undefined ? JOIN_REFUSED : `server ${opts.url} refused the handshake`);
      const candidate = pinned.findIndex((_, i) => !tried.has(i));
      next = candidate === -1 ? undefined : candidate;
    }
  }
  throw lastError ?? new SessionError('ERR_SESSION_AUTH', `server ${opts.url} refused the handshake`);
}

/** Maps non-401 refusals to their errors; undefined for 401 (the caller decides). */
function interpretRefusal(err: UpgradeRefusedError, wire: WireProtocol): TwowayError | undefined {
  switch (err.status) {
    case 401:
      return undefined;
    case 426: {
      const theirs = headerValue(err.headers, PROTOCOL_HEADER) ?? 'an unknown version';
      return new SessionError('ERR_SESSION_PROTOCOL_VERSION', `server speaks ${theirs.slice(0, 64)}, this client speaks ${wire.subprotocol}`);
    }
    case 429:
      return new SessionError('ERR_SESSION_RATE_LIMITED', 'server refused: too many handshakes from this address');
    case 503:
      return new SessionError('ERR_SESSION_TOO_MANY_UNAUTHENTICATED', 'server refused: too many pending connections');
    case 404:
      return new SessionError(
        'ERR_TRANSPORT',
        `no twoway endpoint at ${err.url ?? 'this URL'} (HTTP 404): check the path (the server's [server].path, default /twoway)`,
      );
    default:
      return err;
  }
}

async function connectOnce(
  opts: ConnectSecureOptions,
  wire: WireProtocol,
  limits: SessionLimits,
  serverKey: Uint8Array,
  timeoutMs: number,
): Promise<SecureSession> {
  const psk = opts.psk ?? ZERO_PSK;
  const { message, state } = createInitiation(wire, opts.staticKeyPair, serverKey, psk, undefined, opts.join?.inviteId);
  let completed: CompletedHandshake | undefined;
  const channel = await dialTransport({
    url: opts.url,
    subprotocol: wire.subprotocol,
    headers: { [HANDSHAKE_HEADER]: encodeBase64Url(message), [MUX_SETTINGS_HEADER]: '1' },
    maxPayloadBytes: MAX_RECORD_BYTES,
    highWaterBytes: limits.highWaterBytes,
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
    ...(opts.proxy !== undefined ? { proxy: opts.proxy } : {}),
    timeoutMs,
    onUpgradeResponse: (headers) => {
      completed = readResponse(state, headers, opts.join !== undefined);
    },
  });
  if (completed === undefined) {
    channel.close({ code: 'protocol-error' });
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', 'server opened the WebSocket without a handshake reply');
  }
  const session = new RecordLayer({
    initiator: true,
    transport: channel,
    keys: completed.keys,
    handshakeHash: completed.handshakeHash,
    wire,
    localStatic: opts.staticKeyPair,
    remoteStatic: serverKey,
    peerName: 'server',
    remoteAddress: channel.remoteAddress,
    limits,
    logger: opts.logger.child({ peer: 'server', fingerprint: fingerprint(serverKey), remote: channel.remoteAddress }),
    rekeyPsk: () => psk,
  });
  session.sendControl(RecordType.keepalive);
  opts.logger.info({ event: EVENTS.authAccepted, fingerprint: fingerprint(serverKey), remote: channel.remoteAddress }, 'session established');
  return session;
}

function readResponse(state: HandshakeState, headers: IncomingHttpHeaders, join: boolean): CompletedHandshake {
  const text = headerValue(headers, HANDSHAKE_HEADER);
  if (text === undefined) throw new SessionError('ERR_SESSION_BAD_MESSAGE', 'the 101 response carried no handshake reply');
  const reply = decodeBase64Url(text, MAX_HANDSHAKE_HEADER_CHARS, 'handshake reply');
  try {
    return consumeResponse(state, reply);
  } catch (err) {
    if (err instanceof TwowayError && err.code.startsWith('ERR_NOISE')) {
      const why = join
        ? "the server's handshake reply failed to authenticate: the invitation's secret is not the one the server holds (a damaged token), or this server did not issue it"
        : "the server's handshake reply failed to authenticate: wrong psk, or a server without the pinned key";
      throw new SessionError('ERR_SESSION_DECRYPT', why, {
        cause: err,
      });
    }
    throw err;
  }
}
