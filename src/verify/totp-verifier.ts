/**
 * Checks a TOTP code (RFC 6238) for a peer: the code of the current 30-second step or of one step
 * either side (clock drift), each step accepted once (the replay mark in the secrets file, moved
 * under its lock, so two logins racing with one code cannot both win), compared in constant time.
 * Wrong codes are counted per key: after `maxAttempts` of them the key is locked for `lockoutMs`,
 * during which every code is refused, right or wrong. A success clears the count.
 */
import { timingSafeEqual } from 'node:crypto';
import { HOTP, Secret } from 'otpauth';
import { TOTP_ALGORITHM, TOTP_DIGITS, TOTP_PERIOD_S, advanceTotpStep, readTotpEntry } from './totp-secrets.js';
import type { VerifiedPerson, VerifyContext, VerifyFailure } from './verify-method.js';

/** Steps either side of the current one whose code is accepted. */
export const TOTP_WINDOW_STEPS = 1;
export const DEFAULT_MAX_ATTEMPTS = 5;
export const DEFAULT_LOCKOUT_MS = 300_000;
/** Upper bound on keys with a wrong-code count (only allowlisted keys get here). */
const MAX_TRACKED_KEYS = 10_000;
const CODE = /^[0-9]{6}$/;

export interface TotpVerifierOptions {
  /** The secrets file (totp-secrets.ts). */
  readonly file: string;
  readonly maxAttempts?: number;
  readonly lockoutMs?: number;
  /** Epoch milliseconds (tests move the clock). */
  readonly now?: () => number;
}

export type TotpOutcome =
  | { readonly ok: true; readonly person: VerifiedPerson; readonly step: number }
  /** `lockedNow`: this wrong code started the lockout (the caller writes the audit line). */
  | { readonly ok: false; readonly failure: VerifyFailure; readonly lockedNow: boolean };

interface Attempts {
  failures: number;
  lockedUntil: number;
}

export class TotpVerifier {
  readonly #file: string;
  readonly #maxAttempts: number;
  readonly #lockoutMs: number;
  readonly #now: () => number;
  readonly #attempts = new Map<string, Attempts>();

  constructor(options: TotpVerifierOptions) {
    this.#file = options.file;
    this.#maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.#lockoutMs = options.lockoutMs ?? DEFAULT_LOCKOUT_MS;
    this.#now = options.now ?? Date.now;
  }

  /** Checks `code` for the context's peer; the identity of a TOTP verification is the peer's name. */
  verify(ctx: VerifyContext, code: unknown): TotpOutcome {
    const now = this.#now();
    const attempts = this.#attempts.get(ctx.fingerprint);
    if (attempts !== undefined && attempts.lockedUntil > now) {
      return fail('locked', `too many wrong codes: try again in ${Math.ceil((attempts.lockedUntil - now) / 1000)} s`, false, attempts.lockedUntil - now);
    }
    if (typeof code !== 'string' || !CODE.test(code)) return fail('bad-request', `expected a code of ${TOTP_DIGITS} digits`, false);
    const entry = readTotpEntry(this.#file, ctx.peerName);
    if (entry === undefined)
      return fail('not-enrolled', `no TOTP secret is enrolled for ${ctx.peerName} (the administrator runs: twoway peers totp ${ctx.peerName})`, false);

    const current = Math.floor(now / 1000 / TOTP_PERIOD_S);
    const given = Buffer.from(code, 'ascii');
    const secret = Secret.fromBase32(entry.secret);
    let matched: number | undefined;
    let replayed = false;
    // Every candidate is computed and compared, whichever matches: the time taken says nothing.
    for (let step = current - TOTP_WINDOW_STEPS; step <= current + TOTP_WINDOW_STEPS; step++) {
      const expected = Buffer.from(HOTP.generate({ secret, algorithm: TOTP_ALGORITHM, digits: TOTP_DIGITS, counter: step }), 'ascii');
      const equal = timingSafeEqual(expected, given);
      if (equal && step > entry.lastStep && matched === undefined) matched = step;
      else if (equal && step <= entry.lastStep) replayed = true;
    }
    if (matched === undefined) {
      if (replayed) return fail('replay', 'this code was already used: wait for the next one', false);
      return this.#wrong(ctx.fingerprint, now);
    }
    if (!advanceTotpStep(this.#file, ctx.peerName, matched)) return fail('replay', 'this code was already used: wait for the next one', false);
    this.#attempts.delete(ctx.fingerprint);
    return { ok: true, person: { identity: ctx.peerName, groups: [] }, step: matched };
  }

  /** Milliseconds the key stays locked (0: not locked). */
  lockedFor(fingerprint: string): number {
    const a = this.#attempts.get(fingerprint);
    return a === undefined ? 0 : Math.max(0, a.lockedUntil - this.#now());
  }

  #wrong(fingerprint: string, now: number): TotpOutcome {
    let a = this.#attempts.get(fingerprint);
    if (a === undefined) {
      if (this.#attempts.size >= MAX_TRACKED_KEYS) this.#prune(now);
      a = { failures: 0, lockedUntil: 0 };
      this.#attempts.set(fingerprint, a);
    }
    a.failures++;
    if (a.failures >= this.#maxAttempts) {
      a.failures = 0;
      a.lockedUntil = now + this.#lockoutMs;
      return fail('locked', `wrong code; ${this.#maxAttempts} wrong codes: locked for ${Math.ceil(this.#lockoutMs / 1000)} s`, true, this.#lockoutMs);
    }
    const left = this.#maxAttempts - a.failures;
    return fail('wrong-code', `wrong code (${left} ${left === 1 ? 'attempt' : 'attempts'} left before a lockout)`, false);
  }

  #prune(now: number): void {
    for (const [key, a] of this.#attempts) if (a.lockedUntil <= now) this.#attempts.delete(key);
    // Still full: the oldest counts go (an attacker's keys would have to be allowlisted to fill it).
    while (this.#attempts.size >= MAX_TRACKED_KEYS) this.#attempts.delete(this.#attempts.keys().next().value!);
  }
}

function fail(error: VerifyFailure['error'], detail: string, lockedNow: boolean, retryAfterMs?: number): TotpOutcome {
  return { ok: false, failure: { error, detail, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) }, lockedNow };
}
