/**
 * The server's user-verification gate (docs/PROTOCOL.md section 13). For a peer with `verify`
 * set, every open but the exchange's own (`twoway:verify`) is refused with `unverified` until the
 * key holds a verification; the exchange's stream is served here, before any policy, for every
 * peer. The verifications live in a VerificationStore (per key, surviving reconnects until the
 * peer's `verify_valid_ms`, indexed by identity); TOTP is checked by TotpVerifier, OpenID Connect
 * by the OidcMethod the daemon was given. Every outcome is an audit line and a metric.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditSink } from '../log/audit.js';
import { EVENTS } from '../log/events.js';
import type { StreamRequest } from '../mux/stream-request.js';
import type { RulePerson } from '../policy/access-rules.js';
import type { ServerPeer } from '../policy/peer-table.js';
import { TotpVerifier } from '../verify/totp-verifier.js';
import { VerificationStore, type Verification, type VerifyMethodName } from '../verify/verification-state.js';
import { VERIFY_TARGET, VERIFY_VERSION, serveVerifyStream, type VerifyMessage } from '../verify/verify-exchange.js';
import { isVerifyFailure, type OidcMethod, type VerifiedPerson, type VerifyContext, type VerifyFailure } from '../verify/verify-method.js';

/** The refusal every gated open gets (it names the command that fixes it). */
export const UNVERIFIED_MESSAGE = 'verification required: run twoway login';
/** Verify streams one session may hold at once. */
const MAX_VERIFY_STREAMS_PER_SESSION = 2;
const MAX_FIELD_CHARS = 4096;

export interface VerifyGateOptions {
  /** The TOTP secrets file (`[verify] totp_file`); without one a totp peer is never enrolled. */
  readonly totpFile?: string;
  readonly maxAttempts?: number;
  readonly lockoutMs?: number;
  /** OpenID Connect (src/verify/oidc.ts); without it an oidc peer's requests fail with `oidc-failed`. */
  readonly oidc?: OidcMethod;
  readonly now?: () => number;
}

/** The session as the gate sees it. */
export interface GateSession {
  readonly fingerprint: string;
  readonly peerName: string;
  readonly session: { readonly binding: Uint8Array };
  readonly log: Logger;
}

/** What `twoway status` shows per session. */
export interface VerificationStatus {
  readonly method: VerifyMethodName;
  readonly identity: string;
  readonly expiresAt: string;
}

type Answer = VerifyMessage;

export class VerifyGate {
  readonly #store: VerificationStore;
  readonly #totp: TotpVerifier | undefined;
  readonly #oidc: OidcMethod | undefined;
  readonly #now: () => number;
  readonly #audit: AuditSink;
  readonly #verifyStreams = new WeakMap<GateSession, number>();

  constructor(options: VerifyGateOptions, audit: AuditSink) {
    this.#now = options.now ?? Date.now;
    this.#store = new VerificationStore(this.#now);
    this.#totp =
      options.totpFile === undefined
        ? undefined
        : new TotpVerifier({
            file: options.totpFile,
            ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
            ...(options.lockoutMs !== undefined ? { lockoutMs: options.lockoutMs } : {}),
            now: this.#now,
          });
    this.#oidc = options.oidc;
    this.#audit = audit;
  }

  /**
   * Takes the open when it is the gate's: the exchange's stream (served), or any open of a peer
   * that must verify and has not (refused with `unverified`). False: dispatch it as usual.
   */
  intercept(s: GateSession, peer: ServerPeer | undefined, request: StreamRequest): boolean {
    if (request.target === VERIFY_TARGET) {
      if (peer === undefined) request.reject('not-permitted', 'peer is no longer on the allowlist');
      else this.#serve(s, request);
      return true;
    }
    if (peer?.verify === undefined || this.#store.get(s.fingerprint) !== undefined) return false;
    this.#audit({ type: 'stream-refused', via: 'target', reason: 'unverified' });
    s.log.warn(
      { event: EVENTS.streamRefused, target: request.target, reason: 'unverified', detail: UNVERIFIED_MESSAGE },
      `stream refused: ${UNVERIFIED_MESSAGE}`,
    );
    request.reject('unverified', UNVERIFIED_MESSAGE);
    return true;
  }

  /** The verified person of a key, for rule conditions (`verified<15m`, `group:NAME`). */
  person(fingerprint: string): RulePerson | undefined {
    const v = this.#store.get(fingerprint);
    return v === undefined ? undefined : { verifiedAt: v.verifiedAt, groups: v.groups };
  }

  /** The key's verification as `twoway status` shows it, or null. */
  status(fingerprint: string): VerificationStatus | null {
    const v = this.#store.get(fingerprint);
    return v === undefined ? null : { method: v.method, identity: v.identity, expiresAt: new Date(v.expiresAt).toISOString() };
  }

  /** The session ended: OIDC forgets its pending sign-ins. */
  sessionEnded(binding: Uint8Array): void {
    this.#oidc?.forget(binding);
  }

  /**
   * A reload: verifications of keys no longer listed, or whose peer no longer verifies that way, are
   * dropped; a shorter `verify_valid_ms` shortens those kept.
   */
  reload(lookup: (fingerprint: string) => ServerPeer | undefined): void {
    this.#store.prune((fingerprint, v) => lookup(fingerprint)?.verify?.method === v.method);
    for (const fingerprint of this.#fingerprints()) {
      const peer = lookup(fingerprint);
      const v = this.#store.get(fingerprint);
      if (peer?.verify !== undefined && v !== undefined) this.#store.capExpiry(fingerprint, v.verifiedAt + peer.verify.validMs);
    }
  }

  /**
   * `twoway unverify`: forgets the verifications of the peer named `peer` or of the person
   * `identity`; returns the keys they covered (the daemon closes their sessions) and how many
   * verifications were dropped.
   */
  revoke(target: { peer?: string; identity?: string }, keysOfPeer: readonly string[]): { keys: string[]; dropped: number } {
    const keys = new Set<string>(keysOfPeer);
    if (target.identity !== undefined) for (const k of this.#store.keysOf(target.identity)) keys.add(k);
    if (target.peer !== undefined) for (const k of this.#fingerprints()) if (this.#peerOf.get(k) === target.peer) keys.add(k);
    let dropped = 0;
    for (const k of keys) if (this.#store.delete(k)) dropped++;
    return { keys: [...keys], dropped };
  }

  get verifiedKeys(): number {
    return this.#store.size;
  }

  /** Peer name of each verified key (for `unverify --peer`). */
  readonly #peerOf = new Map<string, string>();

  #fingerprints(): string[] {
    return [...this.#peerOf.keys()].filter((k) => {
      if (this.#store.get(k) !== undefined) return true;
      this.#peerOf.delete(k);
      return false;
    });
  }

  // --- the exchange ---------------------------------------------------------------------------

  #serve(s: GateSession, request: StreamRequest): void {
    const held = this.#verifyStreams.get(s) ?? 0;
    if (held >= MAX_VERIFY_STREAMS_PER_SESSION) {
      request.reject('limit', `at most ${MAX_VERIFY_STREAMS_PER_SESSION} verify streams per session`);
      return;
    }
    this.#verifyStreams.set(s, held + 1);
    const stream = request.accept();
    stream.on('close', () => this.#verifyStreams.set(s, Math.max(0, (this.#verifyStreams.get(s) ?? 1) - 1)));
    stream.on('error', () => {});
    serveVerifyStream(stream, (message) => this.answer(s, message));
  }

  /** Set by the daemon: the peer as the allowlist in force says now. */
  currentPeer: (s: GateSession) => ServerPeer | undefined = () => undefined;

  /** Answers one request of the exchange; the peer is looked up at each request (a reload may change it between two). */
  async answer(s: GateSession, m: VerifyMessage, peer: ServerPeer | undefined = this.currentPeer(s)): Promise<Answer> {
    if (peer === undefined) return refusal('bad-request', 'peer is no longer on the allowlist');
    if (m.v !== VERIFY_VERSION) return refusal('bad-request', `expected "v":${VERIFY_VERSION}`);
    if (typeof m.binding !== 'string') return refusal('bad-request', 'the request carries no binding');
    if (!sameBinding(m.binding, s.session.binding)) {
      this.#refused(s, peer, typeof m.method === 'string' ? m.method : '', { error: 'bad-binding', detail: 'the binding is not this session’s' });
      return refusal('bad-binding', 'the binding is not this session’s: a request made for another session');
    }
    const required = peer.verify?.method ?? null;
    const ctx: VerifyContext = {
      peerName: peer.name,
      fingerprint: s.fingerprint,
      binding: s.session.binding,
      ...(peer.verify?.identity !== undefined ? { identity: peer.verify.identity } : {}),
    };
    switch (m.method) {
      case 'query': {
        const v = peer.verify === undefined ? undefined : this.#store.get(s.fingerprint);
        return { ok: true, required, verified: v !== undefined, ...(v ? { identity: v.identity, expires_at: new Date(v.expiresAt).toISOString() } : {}) };
      }
      case 'totp': {
        if (required !== 'totp') return this.#refused(s, peer, 'totp', notRequired(required, 'totp'));
        if (this.#totp === undefined) return this.#refused(s, peer, 'totp', { error: 'not-enrolled', detail: 'TOTP is not set up on the server' });
        let outcome;
        try {
          outcome = this.#totp.verify(ctx, m.code);
        } catch (err) {
          s.log.error({ event: EVENTS.verifyRefused, method: 'totp', err: (err as Error).message }, `TOTP check failed: ${(err as Error).message}`);
          return this.#refused(s, peer, 'totp', { error: 'not-enrolled', detail: 'the server could not read its TOTP secrets' });
        }
        if (outcome.ok) return this.#accepted(s, peer, 'totp', outcome.person);
        if (outcome.lockedNow) {
          s.log.warn(
            { event: EVENTS.verifyLocked, method: 'totp', fingerprint: s.fingerprint, retryAfterMs: outcome.failure.retryAfterMs },
            `${peer.name}: too many wrong TOTP codes, key locked for ${outcome.failure.retryAfterMs} ms`,
          );
        }
        return this.#refused(s, peer, 'totp', outcome.failure);
      }
      case 'oidc':
        return this.#oidcStep(s, peer, ctx, m);
      default:
        return refusal('bad-request', 'method must be "query", "totp" or "oidc"');
    }
  }

  async #oidcStep(s: GateSession, peer: ServerPeer, ctx: VerifyContext, m: VerifyMessage): Promise<Answer> {
    const required = peer.verify?.method ?? null;
    if (required !== 'oidc') return this.#refused(s, peer, 'oidc', notRequired(required, 'oidc'));
    if (this.#oidc === undefined) return this.#refused(s, peer, 'oidc', { error: 'oidc-failed', detail: 'OIDC is not configured on the server' });
    if (m.step === 'begin') {
      if (!shortString(m.redirect_uri) || !shortString(m.code_challenge)) return refusal('bad-request', 'begin needs redirect_uri and code_challenge');
      const begun = await this.#oidc.begin(ctx, { redirectUri: m.redirect_uri, codeChallenge: m.code_challenge });
      if (isVerifyFailure(begun)) return this.#refused(s, peer, 'oidc', begun);
      return { ok: true, authorization_url: begun.authorizationUrl, state: begun.state };
    }
    if (m.step === 'finish') {
      if (!shortString(m.state) || !shortString(m.code) || !shortString(m.code_verifier))
        return refusal('bad-request', 'finish needs state, code and code_verifier');
      const person = await this.#oidc.finish(ctx, { state: m.state, code: m.code, codeVerifier: m.code_verifier });
      if (isVerifyFailure(person)) return this.#refused(s, peer, 'oidc', person);
      if (ctx.identity !== undefined && person.identity !== ctx.identity) {
        return this.#refused(s, peer, 'oidc', { error: 'oidc-failed', detail: 'identity: signed in as another person than this key’s' });
      }
      return this.#accepted(s, peer, 'oidc', person);
    }
    return refusal('bad-request', 'step must be "begin" or "finish"');
  }

  #accepted(s: GateSession, peer: ServerPeer, method: VerifyMethodName, person: VerifiedPerson): Answer {
    const now = this.#now();
    const validMs = peer.verify?.validMs ?? 0;
    const v: Verification = { method, identity: person.identity, groups: person.groups, verifiedAt: now, expiresAt: now + validMs };
    this.#store.set(s.fingerprint, v);
    this.#peerOf.set(s.fingerprint, peer.name);
    this.#audit({ type: 'verification', method, outcome: 'accepted' });
    const expiresAt = new Date(v.expiresAt).toISOString();
    s.log.info(
      { event: EVENTS.verifyAccepted, method, identity: person.identity, groups: person.groups, fingerprint: s.fingerprint, expiresAt },
      `${peer.name}: verified by ${method} as ${person.identity} until ${expiresAt}`,
    );
    return { ok: true, identity: person.identity, expires_at: expiresAt };
  }

  #refused(s: GateSession, peer: ServerPeer, method: string, failure: VerifyFailure): Answer {
    const m = method === 'totp' || method === 'oidc' ? method : 'none';
    this.#audit({ type: 'verification', method: m, outcome: failure.error });
    s.log.warn(
      { event: EVENTS.verifyRefused, method: m, error: failure.error, detail: failure.detail, fingerprint: s.fingerprint },
      `${peer.name}: verification refused (${failure.error}): ${failure.detail}`,
    );
    return refusal(failure.error, failure.detail, failure.retryAfterMs);
  }
}

function refusal(error: VerifyFailure['error'], detail: string, retryAfterMs?: number): Answer {
  return { ok: false, error, detail, ...(retryAfterMs !== undefined ? { retry_after_ms: retryAfterMs } : {}) };
}

function notRequired(required: VerifyMethodName | null, asked: VerifyMethodName): VerifyFailure {
  return required === null
    ? { error: 'not-required', detail: 'this peer needs no verification' }
    : { error: 'bad-request', detail: `this peer verifies with ${required}, not ${asked}` };
}

function shortString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_FIELD_CHARS;
}

/** Compares a request's binding (base64url) with the session's, in constant time. */
function sameBinding(text: string, binding: Uint8Array): boolean {
  if (text.length !== 43 || !/^[A-Za-z0-9_-]+$/.test(text)) return false;
  const given = Buffer.from(text, 'base64url');
  return given.length === binding.length && timingSafeEqual(given, binding);
}
