/**
 * The server's memory of verified people: per key (fingerprint) the method, the identity and its
 * groups, when it was verified and until when it holds. It survives reconnects of the same key
 * until `expiresAt` (the peer's `verify_valid_ms`); an index by identity finds every key one
 * person verified (`twoway unverify --identity`). Bounded: one entry per allowlisted key at most,
 * expired entries are dropped as they are met and on every prune.
 */

export type VerifyMethodName = 'totp' | 'oidc';

export interface Verification {
  readonly method: VerifyMethodName;
  readonly identity: string;
  readonly groups: readonly string[];
  /** Epoch milliseconds. */
  readonly verifiedAt: number;
  readonly expiresAt: number;
}

/** Upper bound on remembered keys (the peers file holds at most 10,000 peers). */
export const MAX_VERIFICATIONS = 10_000;

export class VerificationStore {
  readonly #byKey = new Map<string, Verification>();
  readonly #byIdentity = new Map<string, Set<string>>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** The key's verification while it holds, else undefined (an expired one is forgotten). */
  get(fingerprint: string): Verification | undefined {
    const v = this.#byKey.get(fingerprint);
    if (v === undefined) return undefined;
    if (v.expiresAt > this.#now()) return v;
    this.delete(fingerprint);
    return undefined;
  }

  set(fingerprint: string, verification: Verification): void {
    this.delete(fingerprint);
    if (this.#byKey.size >= MAX_VERIFICATIONS) this.prune();
    if (this.#byKey.size >= MAX_VERIFICATIONS) {
      // Still full of live entries: the oldest verification goes (Map order is insertion order).
      const oldest = this.#byKey.keys().next().value;
      if (oldest !== undefined) this.delete(oldest);
    }
    this.#byKey.set(fingerprint, Object.freeze({ ...verification, groups: Object.freeze([...verification.groups]) }));
    const keys = this.#byIdentity.get(verification.identity) ?? new Set<string>();
    this.#byIdentity.set(verification.identity, keys.add(fingerprint));
  }

  /** Forgets the key's verification; true when there was one. */
  delete(fingerprint: string): boolean {
    const v = this.#byKey.get(fingerprint);
    if (v === undefined) return false;
    this.#byKey.delete(fingerprint);
    const keys = this.#byIdentity.get(v.identity);
    keys?.delete(fingerprint);
    if (keys?.size === 0) this.#byIdentity.delete(v.identity);
    return true;
  }

  /** The keys `identity` verified (live or not yet pruned). */
  keysOf(identity: string): string[] {
    return [...(this.#byIdentity.get(identity) ?? [])];
  }

  /** Drops expired entries, and those `keep` refuses (a reload: the key is gone, or its peer no longer verifies). */
  prune(keep: (fingerprint: string, v: Verification) => boolean = () => true): number {
    const now = this.#now();
    let dropped = 0;
    for (const [fingerprint, v] of [...this.#byKey]) {
      if (v.expiresAt > now && keep(fingerprint, v)) continue;
      this.delete(fingerprint);
      dropped++;
    }
    return dropped;
  }

  /** Shortens a verification to `expiresAt` when that is earlier (a reload lowered `verify_valid_ms`). */
  capExpiry(fingerprint: string, expiresAt: number): void {
    const v = this.#byKey.get(fingerprint);
    if (v !== undefined && expiresAt < v.expiresAt) this.#byKey.set(fingerprint, Object.freeze({ ...v, expiresAt }));
  }

  get size(): number {
    return this.#byKey.size;
  }
}
