/**
 * The server side of a join (docs/PROTOCOL.md §12.3). The handshake already proved the token:
 * the session exists only because the client knew the invitation's psk. On that confirmed
 * session (no mux) the client sends one request and gets one answer, then the server closes:
 *
 *   client -> server  {"v":1,"hostname":"..."}
 *   server -> client  {"ok":true,"name","pending","verify"?,"totp_uri"?} | {"ok":false,"error","detail"}
 *
 * Registering marks the invitation used (once, under its file's lock, even when two joins with
 * one token race), appends the peer to the peers file and puts the new allowlist in force.
 */
import type { Logger } from 'pino';
import { encodeKey, fingerprint } from '../crypto/keys.js';
import { EVENTS } from '../log/events.js';
import { escapeText } from '../log/escape.js';
import type { JoinInvitation } from '../session/listen-secure.js';
import type { JoinRefusalReason } from '../session/refusal-log.js';
import type { SecureSession } from '../session/secure-session.js';
import { claimInvite, lookupInvite } from './invites-store.js';
import { RegisterRefused, registerPeer } from './register.js';

/** The client's request must arrive within this time of key confirmation. */
export const JOIN_EXCHANGE_TIMEOUT_MS = 10_000;
/** Largest join request or answer (bytes of JSON). */
export const MAX_JOIN_MESSAGE_BYTES = 4_096;
const MAX_HOSTNAME_CHARS = 255;

/** The join request's version and the answer's error words. */
export const JOIN_VERSION = 1;
export type JoinError = JoinRefusalReason | 'name-taken' | 'key-taken' | 'bad-request' | 'server-error';

export interface JoinAnswer {
  readonly ok: boolean;
  readonly name?: string;
  readonly pending?: boolean;
  readonly verify?: 'totp' | 'oidc';
  readonly totp_uri?: string;
  readonly error?: JoinError;
  readonly detail?: string;
}

export interface JoinServiceOptions {
  readonly invitesFile: string;
  readonly peersFile: string;
  readonly logger: Logger;
  /** A `--verify totp` invitation: creates the peer's TOTP secret, returns its otpauth:// URI (shown once). */
  readonly enrolTotp?: (peerName: string) => string;
  /** The peers file changed: put it in force in this process (the daemon's reload). */
  readonly reload: (trigger: string) => void;
  readonly now?: () => Date;
}

/** Looks invitations up for the handshake and serves the join exchange on confirmed join sessions. */
export class JoinService {
  readonly #o: JoinServiceOptions;
  readonly #log: Logger;

  constructor(options: JoinServiceOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  #now(): Date {
    return this.#o.now?.() ?? new Date();
  }

  /** For listenSecure's `lookupJoin`: an open invitation by id, or why not. */
  lookupJoin(inviteId: Uint8Array): { readonly invite: JoinInvitation } | { readonly refused: JoinRefusalReason } {
    try {
      const found = lookupInvite(this.#o.invitesFile, inviteId, this.#now());
      if (!found.ok) return { refused: found.reason };
      return { invite: { id: found.invite.record.id, name: found.invite.record.name, psk: found.invite.psk } };
    } catch (err) {
      this.#log.error({ event: EVENTS.joinRefused, reason: 'server-error', err: (err as Error).message }, 'the invitations file cannot be read');
      return { refused: 'invite-unknown' };
    }
  }

  /** Runs the join exchange on a key-confirmed join session, then closes it. */
  serve(session: SecureSession, join: { readonly id: string; readonly name: string }): void {
    const fp = fingerprint(session.peerPublicKey);
    const log = this.#log.child({ peer: join.name, fingerprint: fp, remote: session.remoteAddress, invite: join.id });
    let answered = false;
    const timer = setTimeout(
      () => finish({ ok: false, error: 'bad-request', detail: `no join request within ${JOIN_EXCHANGE_TIMEOUT_MS} ms` }),
      JOIN_EXCHANGE_TIMEOUT_MS,
    );
    timer.unref();
    const finish = (answer: JoinAnswer, hostname?: string): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      if (answer.ok) {
        log.info(
          {
            event: EVENTS.joinAccepted,
            pending: answer.pending === true,
            ...(answer.verify ? { verify: answer.verify } : {}),
            ...(hostname !== undefined ? { hostname } : {}),
          },
          `${join.name} joined by invitation${answer.pending ? ', waiting for approval' : ''}`,
        );
      } else {
        log.warn({ event: EVENTS.joinRefused, reason: answer.error, detail: answer.detail }, `join refused for ${join.name}: ${answer.error}`);
      }
      session.send(new TextEncoder().encode(JSON.stringify(answer)));
      session.close({ code: 'normal', message: answer.ok ? 'joined' : 'join refused' });
    };
    session.onClose(() => {
      clearTimeout(timer);
      answered = true;
    });
    session.onMessage((message) => {
      if (answered) return;
      const request = parseRequest(message);
      if (typeof request === 'string') {
        finish({ ok: false, error: 'bad-request', detail: request });
        return;
      }
      finish(this.#register(session, join, fp, log), escapeText(request.hostname));
    });
  }

  #register(session: SecureSession, join: { readonly id: string; readonly name: string }, fp: string, log: Logger): JoinAnswer {
    try {
      const claimed = claimInvite(
        this.#o.invitesFile,
        join.id,
        fp,
        (record) => {
          // The TOTP secret first: a failure there leaves no peer and the invitation open.
          const totpUri = record.verify === 'totp' && this.#o.enrolTotp !== undefined ? this.#o.enrolTotp(record.name) : undefined;
          registerPeer(this.#o.peersFile, {
            name: record.name,
            publicKey: encodeKey(session.peerPublicKey),
            allow: record.allow,
            devices: record.devices,
            ...(record.verify !== undefined ? { verify: record.verify } : {}),
            pending: record.approval,
          });
          return { record, totpUri };
        },
        this.#now(),
      );
      if (!claimed.ok) return { ok: false, error: claimed.reason, detail: `the invitation is ${claimed.reason.slice('invite-'.length)}` };
      const { record, totpUri } = claimed.value;
      this.#o.reload('join');
      return {
        ok: true,
        name: record.name,
        pending: record.approval,
        ...(record.verify !== undefined ? { verify: record.verify } : {}),
        ...(totpUri !== undefined ? { totp_uri: totpUri } : {}),
      };
    } catch (err) {
      if (err instanceof RegisterRefused) return { ok: false, error: err.reason, detail: err.message };
      log.error({ event: EVENTS.internalError, err: (err as Error).message }, 'join registration failed');
      return { ok: false, error: 'server-error', detail: 'the server could not register the key; ask the administrator to look at its log' };
    }
  }
}

/** The request's fields, or why it is malformed. */
function parseRequest(message: Uint8Array): { hostname: string } | string {
  if (message.length > MAX_JOIN_MESSAGE_BYTES) return `request longer than ${MAX_JOIN_MESSAGE_BYTES} bytes`;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(message));
  } catch {
    return 'request is not UTF-8 JSON';
  }
  const r = value as { v?: unknown; hostname?: unknown } | null;
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return 'request is not a JSON object';
  if (r.v !== JOIN_VERSION) return `request version ${JSON.stringify(r.v)}, expected ${JOIN_VERSION}`;
  if (typeof r.hostname !== 'string' || r.hostname.length > MAX_HOSTNAME_CHARS)
    return `hostname: expected a string of at most ${MAX_HOSTNAME_CHARS} characters`;
  return { hostname: r.hostname };
}
