/**
 * listenSecure: the responder. Admission happens in layers, cheapest first:
 *   TCP accept: unauthenticated caps (global, per address) and the absolute handshake deadline;
 *   upgrade: path and subprotocol (transport), handshake rate (global and per address), then
 *   message 1 (DH work), the allowlist (`lookupPeer`, asked per handshake), psk policy, replay.
 * Every authentication failure gets the same bare 401 (with the server's public key, which is
 * public); the operator's log gets the reason. A session reaches `onSession` only after the first
 * valid transport record from the client (key confirmation, SECURITY.md #1).
 */
import type { Logger } from 'pino';
import { fingerprint } from '../crypto/keys.js';
import { TwowayError } from '../errors.js';
import { listenTransport, type TransportConnection, type TransportListenOptions, type UpgradeDecision, type UpgradeRequest } from '../transport/ws-listen.js';
import { decodeBase64Url, encodeBase64Url } from './base64url.js';
import { consumeInitiation, createResponse } from './handshake.js';
import { resolveSessionLimits, type SessionLimits } from './session-limits.js';
import { TokenBucket } from '../lib/token-bucket.js';
import { AddressRateLimiter } from './rate-limit.js';
import type { StaticKeyPair } from './rekey.js';
import { RefusalLog, type JoinRefusalReason, type RefusalReason } from './refusal-log.js';
import { ReplayGuard } from './replay-guard.js';
import { RecordLayer, type SecureSession } from './secure-session.js';
import { UnauthenticatedConnections, type PendingConnection } from './unauthenticated.js';
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

/** An allowlist entry as the server sees it. */
export interface PeerEntry {
  readonly name: string;
  readonly publicKey: Uint8Array;
  readonly psk?: Uint8Array;
  /** Enrolled but not yet approved: refused after key confirmation ('pending-approval'). */
  readonly pending?: boolean;
}

/** An open invitation, as a join handshake needs it (docs/PROTOCOL.md §12). */
export interface JoinInvitation {
  /** The invite id (base64url). */
  readonly id: string;
  /** The peer name the invitation registers. */
  readonly name: string;
  /** The join psk (32 bytes). */
  readonly psk: Uint8Array;
}

/** The close a pending peer's session gets after key confirmation. */
export const PENDING_APPROVAL_MESSAGE = "waiting for an administrator's approval (twoway peers approve)";

export interface ListenSecureOptions {
  readonly host: string;
  /** 0 picks an ephemeral port. */
  readonly port: number;
  /** Default '/twoway'. */
  readonly path?: string;
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  readonly staticKeyPair: StaticKeyPair;
  /** Asked on every handshake and rekey, so the allowlist may change at runtime. */
  lookupPeer(publicKey: Uint8Array): PeerEntry | undefined;
  /**
   * A join handshake (message 1 flag JOIN): the invitation of `inviteId`, or why not. Without it
   * every join is refused ('invite-unknown'). Asked once per join handshake.
   */
  lookupJoin?(inviteId: Uint8Array): { readonly invite: JoinInvitation } | { readonly refused: JoinRefusalReason };
  /** Refuse peers whose entry has no psk. */
  readonly requirePsk?: boolean;
  readonly limits?: Partial<SessionLimits>;
  /** Trusted reverse proxies whose word on the client address is taken (default: none). */
  readonly proxies?: TransportListenOptions['proxies'];
  readonly logger: Logger;
  onSession(session: SecureSession, info: SessionInfo): void;
  /** Sees every handshake outcome, whatever the log level (the server's metrics count them). */
  onHandshake?(outcome: { readonly accepted: true } | { readonly accepted: false; readonly reason: RefusalReason }): void;
}

/** What the upgrade request said about the client, beyond the handshake. */
export interface SessionInfo {
  /** The client sent `Twoway-Mux-Settings: 1`: it reads the mux SETTINGS frame. */
  readonly muxSettings: boolean;
  /** A join by invitation: the session carries the join exchange, not the mux (docs/PROTOCOL.md §12). */
  readonly join?: { readonly id: string; readonly name: string };
}

export interface SecureServer {
  address(): { host: string; port: number };
  /** Live, key-confirmed sessions. */
  readonly sessions: ReadonlySet<SecureSession>;
  /** Stops listening, closes every session ('shutdown') and drops unauthenticated connections. */
  close(): Promise<void>;
}

export const DEFAULT_PATH = '/twoway';
/** Fingerprints of keys that once held a session, to tell 'revoked' from 'unknown-key' in logs. */
const MAX_REMEMBERED_KEYS = 4_096;

/** Starts a secure server. */
export async function listenSecure(opts: ListenSecureOptions): Promise<SecureServer> {
  return listenSecureWithWireProtocol(opts, WIRE);
}

/** @internal listenSecure for a given wire protocol (tests build other versions). */
export async function listenSecureWithWireProtocol(opts: ListenSecureOptions, wire: WireProtocol): Promise<SecureServer> {
  const limits = resolveSessionLimits(opts.limits);
  const log = opts.logger;
  const refusals = new RefusalLog(log);
  const replay = new ReplayGuard();
  const perAddress = new AddressRateLimiter(limits.handshakesPerSecondPerAddress, limits.handshakeBurstPerAddress);
  const perKey = new AddressRateLimiter(limits.handshakesPerSecondPerKey, limits.handshakeBurstPerKey);
  const global = new TokenBucket(limits.handshakesPerSecondGlobal, limits.handshakeBurstGlobal);
  const sessions = new Set<SecureSession>();
  const knownKeys = new Set<string>();
  /** Key-confirmed sessions per key fingerprint (the per-key cap). */
  const sessionsPerKey = new Map<string, number>();
  const serverKeyHeader = { [SERVER_KEY_HEADER]: encodeBase64Url(opts.staticKeyPair.publicKey) };
  const unauthorized = { kind: 'refuse', status: 401, headers: serverKeyHeader } as const satisfies UpgradeDecision;

  const refuse = (pending: PendingConnection | undefined, remote: string, reason: RefusalReason, detail?: string): void => {
    if (pending !== undefined) {
      if (pending.refusalLogged) return;
      pending.refusalLogged = true;
    }
    opts.onHandshake?.({ accepted: false, reason });
    refusals.refused(reason, {
      remote,
      ...(pending?.fingerprint !== undefined ? { fingerprint: pending.fingerprint } : {}),
      ...(detail !== undefined ? { detail } : {}),
    });
  };

  const unauthenticated = new UnauthenticatedConnections(limits, (pending) => {
    refuse(pending, pending.connection.remoteAddress, 'handshake-timeout');
  });

  const rememberKey = (fp: string): void => {
    knownKeys.delete(fp);
    knownKeys.add(fp);
    if (knownKeys.size > MAX_REMEMBERED_KEYS) knownKeys.delete(knownKeys.values().next().value!);
  };

  const onUpgrade = (request: UpgradeRequest): UpgradeDecision => {
    const { connection } = request;
    const pending = unauthenticated.get(connection);
    const remote = connection.remoteAddress;
    if (pending === undefined || pending.fingerprint !== undefined) {
      // Already authenticated, or a second upgrade attempt on one connection.
      refuse(pending, remote, 'bad-message', 'second upgrade on a connection');
      return unauthorized;
    }
    // A client address that came with the request (a trusted proxy's X-Forwarded-For) is
    // counted now, under that address.
    if (!unauthenticated.readdress(pending)) {
      refuse(pending, remote, 'too-many-unauthenticated', 'address-cap');
      return { kind: 'refuse', status: 429 };
    }
    const source = pending.addressKey!;
    if (!global.take() || !perAddress.take(source)) {
      refuse(pending, remote, 'rate-limited');
      return { kind: 'refuse', status: 429 };
    }
    let consumed;
    try {
      const header = request.headers[HANDSHAKE_HEADER.toLowerCase()];
      if (typeof header !== 'string') {
        refuse(pending, remote, 'bad-message', 'no handshake header');
        return unauthorized;
      }
      const message = decodeBase64Url(header, MAX_HANDSHAKE_HEADER_CHARS, 'handshake header');
      consumed = consumeInitiation(wire, opts.staticKeyPair, message);
    } catch (err) {
      // Garbage, a wrong server key or prologue, a low-order point (SECURITY.md #6): all alike.
      refuse(pending, remote, 'bad-message', err instanceof TwowayError ? err.code : 'error');
      return unauthorized;
    }
    const fp = fingerprint(consumed.clientPublicKey);
    pending.fingerprint = fp;
    let peer: PeerEntry | undefined;
    let join: JoinInvitation | undefined;
    if (consumed.joinId !== undefined) {
      // A join: the invitation's psk keys message 2; the same bare 401 for every refusal.
      const found = opts.lookupJoin?.(consumed.joinId) ?? { refused: 'invite-unknown' as const };
      if ('refused' in found) {
        refuse(pending, remote, found.refused);
        return unauthorized;
      }
      join = found.invite;
      peer = { name: join.name, publicKey: consumed.clientPublicKey, psk: join.psk };
    } else {
      peer = opts.lookupPeer(consumed.clientPublicKey);
      if (peer === undefined) {
        refuse(pending, remote, knownKeys.has(fp) ? 'revoked' : 'unknown-key');
        return unauthorized;
      }
      if (opts.requirePsk === true && peer.psk === undefined) {
        refuse(pending, remote, 'psk-required', peer.name);
        return unauthorized;
      }
    }
    const verdict = replay.check(fp, consumed.timestamp);
    if (verdict !== 'ok') {
      refuse(pending, remote, verdict === 'replay' ? 'replay' : 'rate-limited', verdict);
      return unauthorized;
    }
    // An allowlisted key pays from its own budget, not its address's (issue 13 #8); after the
    // replay check, so a replayed message 1 cannot spend its key's budget. A join's new key
    // proves nothing yet: it pays per address, never refunded.
    if (join === undefined) {
      if (!perKey.take(fp)) {
        refuse(pending, remote, 'rate-limited', 'key');
        return { kind: 'refuse', status: 429 };
      }
      perAddress.refund(source);
    }
    const info: SessionInfo = {
      muxSettings: request.headers[MUX_SETTINGS_HEADER.toLowerCase()] === '1',
      ...(join !== undefined ? { join: { id: join.id, name: join.name } } : {}),
    };
    const joinPsk = join?.psk;
    const response = createResponse(consumed, peer.psk ?? ZERO_PSK);
    const peerName = peer.name;
    const peerLog = log.child({ peer: peerName, fingerprint: fp, remote });
    return {
      kind: 'accept',
      responseHeaders: { [HANDSHAKE_HEADER]: encodeBase64Url(response.message) },
      onOpen: (channel) => {
        const session = new RecordLayer({
          initiator: false,
          transport: channel,
          keys: response.keys,
          handshakeHash: response.handshakeHash,
          wire,
          localStatic: opts.staticKeyPair,
          remoteStatic: consumed.clientPublicKey,
          peerName,
          remoteAddress: remote,
          limits,
          logger: peerLog,
          rekeyPsk: () => {
            if (joinPsk !== undefined) return joinPsk;
            const current = opts.lookupPeer(consumed.clientPublicKey);
            if (current === undefined || (opts.requirePsk === true && current.psk === undefined)) return undefined;
            return current.psk ?? ZERO_PSK;
          },
          onConfirmed: (confirmed) => {
            unauthenticated.release(connection);
            rememberKey(fp);
            // Per key, the newest session beyond the cap is refused: the ones in use stay up
            // (docs/STREAMS.md, "Memory per key"). Only now is the key proven (SECURITY.md #1).
            if (joinPsk === undefined && opts.lookupPeer(consumed.clientPublicKey)?.pending === true) {
              refuse(pending, remote, 'pending-approval', peerName);
              confirmed.close({ code: 'auth-failed', message: PENDING_APPROVAL_MESSAGE });
              return;
            }
            const held = sessionsPerKey.get(fp) ?? 0;
            if (held >= limits.maxSessionsPerKey) {
              const message = `too many sessions for this key (max_sessions_per_key = ${limits.maxSessionsPerKey})`;
              refuse(pending, remote, 'too-many-sessions', `${peerName}: ${held} sessions held`);
              confirmed.close({ code: 'auth-failed', message });
              return;
            }
            sessionsPerKey.set(fp, held + 1);
            sessions.add(confirmed);
            // peerLog already carries peer, fingerprint and remote: repeating them makes duplicate JSON keys.
            opts.onHandshake?.({ accepted: true });
            peerLog.info(
              { event: EVENTS.authAccepted, ...(connection.via !== undefined ? { via: connection.via } : {}), ...(join !== undefined ? { join: true } : {}) },
              'handshake accepted and key confirmed',
            );
            try {
              opts.onSession(confirmed, info);
            } catch (err) {
              peerLog.error({ event: EVENTS.internalError, err }, 'onSession threw; closing the session');
              confirmed.close({ code: 'protocol-error', message: 'server error' });
            }
          },
          onClosed: (closed, reason, wasConfirmed) => {
            if (sessions.delete(closed)) {
              const left = (sessionsPerKey.get(fp) ?? 1) - 1;
              if (left > 0) sessionsPerKey.set(fp, left);
              else sessionsPerKey.delete(fp);
            }
            if (!wasConfirmed) refuse(pending, remote, 'psk-or-key-confirmation-failed', reason.message ?? reason.code);
          },
        });
        if (closing) session.close({ code: 'shutdown' });
      },
    };
  };

  let closing = false;
  const transport = await listenTransport({
    host: opts.host,
    port: opts.port,
    path: opts.path ?? DEFAULT_PATH,
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
    subprotocol: wire.subprotocol,
    ...(opts.proxies !== undefined
      ? { proxies: opts.proxies, onProxyHeaderRefused: (remote: string, why: string) => refuse(undefined, remote, 'bad-message', `PROXY header: ${why}`) }
      : {}),
    maxPayloadBytes: MAX_RECORD_BYTES,
    highWaterBytes: limits.highWaterBytes,
    onConnection: (connection: TransportConnection) => {
      if (closing) return false;
      const admitted = unauthenticated.admit(connection);
      if (typeof admitted === 'string') {
        refuse(undefined, connection.remoteAddress, 'too-many-unauthenticated', admitted);
        return false;
      }
      return true;
    },
    onConnectionClosed: (connection) => unauthenticated.release(connection),
    onUpgrade,
    onProtocolMismatch: (connection, offered) => {
      refuse(
        unauthenticated.get(connection),
        connection.remoteAddress,
        'bad-message',
        `subprotocol ${JSON.stringify(offered.slice(0, 64))}, expected ${wire.subprotocol}`,
      );
    },
  });
  log.debug({ event: EVENTS.transportListening, ...transport.address(), path: opts.path ?? DEFAULT_PATH, tls: opts.tls !== undefined }, 'listening');

  return {
    address: () => transport.address(),
    sessions,
    async close() {
      closing = true;
      for (const session of [...sessions]) session.close({ code: 'shutdown' });
      unauthenticated.clear();
      await transport.close();
    },
  };
}
