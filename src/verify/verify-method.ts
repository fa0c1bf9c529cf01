/**
 * The seam between the verification exchange (verify-exchange.ts, the server's gate) and the
 * methods that prove who sits at the keyboard: TOTP (totp-verifier.ts) and OpenID Connect
 * (oidc.ts, which implements `OidcMethod`). A method receives the session's context, never a
 * socket or a config file; it answers with the verified person or a failure with a stable code
 * (docs/PROTOCOL.md section 13).
 */

/** The `error` of a refused request, as carried in the answer (`{"ok":false,"error":...}`). */
export type VerifyErrorCode = 'wrong-code' | 'replay' | 'locked' | 'not-required' | 'not-enrolled' | 'bad-binding' | 'bad-request' | 'oidc-failed';

/** The session a request arrived on: its peer, its key and its channel binding. */
export interface VerifyContext {
  readonly peerName: string;
  /** The peer key's fingerprint (canonical base64). */
  readonly fingerprint: string;
  /** BLAKE2s-256("twoway verify binding v1" || h) of the session's first handshake. */
  readonly binding: Uint8Array;
  /** The identity the peer entry demands (`identity`), when it names one. */
  readonly identity?: string;
}

/** Who proved to be at the keyboard, and the groups the identity provider says they are in. */
export interface VerifiedPerson {
  readonly identity: string;
  readonly groups: readonly string[];
}

/** A refused proof: the code and a human detail (no secret in it), and when a locked key may try again. */
export type VerifyFailure = { readonly error: VerifyErrorCode; readonly detail: string; readonly retryAfterMs?: number };

/** OpenID Connect sign-in, authorization code with PKCE; the server redeems the code (docs/PROTOCOL.md section 13). */
export interface OidcMethod {
  begin(ctx: VerifyContext, req: { redirectUri: string; codeChallenge: string }): Promise<{ authorizationUrl: string; state: string } | VerifyFailure>;
  finish(ctx: VerifyContext, req: { state: string; code: string; codeVerifier: string }): Promise<VerifiedPerson | VerifyFailure>;
  /** The session ended: forget its pending begins. */
  forget(binding: Uint8Array): void;
}

/** True when a method's answer is a refusal. */
export function isVerifyFailure(value: unknown): value is VerifyFailure {
  return typeof value === 'object' && value !== null && typeof (value as { error?: unknown }).error === 'string';
}
