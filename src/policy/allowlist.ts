/**
 * The runtime allowlist: which static public keys may open a session, under which name, with
 * which psk and access rules. Looked up by public key (base64 map key); names and keys unique.
 * A reload replaces the whole list at once and reports which keys were removed or changed, so
 * the daemon can close revoked sessions and re-check the streams of changed peers
 * (SECURITY.md #5).
 */
import { timingSafeEqual } from 'node:crypto';
import { ForwardError } from '../errors.js';
import type { AccessRules } from './access-rules.js';

/** X25519 public keys and psks are 32 bytes. */
export const PEER_KEY_BYTES = 32;
export const PSK_BYTES = 32;

export interface AllowlistEntry {
  readonly name: string;
  readonly publicKey: Uint8Array;
  readonly psk?: Uint8Array;
  readonly rules: AccessRules;
  readonly kind?: 'user' | 'device';
}

/** What a replaceAll() changed, as base64 public keys. */
export interface AllowlistDiff {
  /** Keys no longer on the list: close their sessions. */
  readonly removed: ReadonlySet<string>;
  /** Keys still listed with a different name, kind, psk or rules: re-check their streams. */
  readonly changed: ReadonlySet<string>;
  readonly added: ReadonlySet<string>;
}

/** The map key of a public key. */
export function keyId(publicKey: Uint8Array): string {
  return Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.length).toString('base64');
}

function badPeer(message: string): ForwardError {
  return new ForwardError('ERR_POLICY_BAD_PEER', message);
}

function validate(entries: readonly AllowlistEntry[]): Map<string, AllowlistEntry> {
  const byKey = new Map<string, AllowlistEntry>();
  const names = new Set<string>();
  for (const [i, e] of entries.entries()) {
    const label = typeof e.name === 'string' && e.name !== '' ? e.name : `#${i + 1}`;
    if (typeof e.name !== 'string' || e.name === '') throw badPeer(`peer ${label}: a name is required`);
    if (!(e.publicKey instanceof Uint8Array) || e.publicKey.length !== PEER_KEY_BYTES) {
      throw badPeer(`peer ${label}: public key must be ${PEER_KEY_BYTES} bytes`);
    }
    if (e.psk !== undefined && (!(e.psk instanceof Uint8Array) || e.psk.length !== PSK_BYTES)) {
      throw badPeer(`peer ${label}: psk must be ${PSK_BYTES} bytes`);
    }
    if (names.has(e.name)) throw badPeer(`peer name ${label} is listed twice`);
    const id = keyId(e.publicKey);
    if (byKey.has(id)) throw badPeer(`peer ${label}: its public key is already listed for peer ${byKey.get(id)!.name}`);
    names.add(e.name);
    // Own copies: a caller reusing its buffers cannot change who is allowed.
    byKey.set(id, Object.freeze({ ...e, publicKey: Uint8Array.from(e.publicKey), ...(e.psk ? { psk: Uint8Array.from(e.psk) } : {}) }));
  }
  return byKey;
}

function samePsk(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && timingSafeEqual(a, b);
}

function sameTexts(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

function samePeer(a: AllowlistEntry, b: AllowlistEntry): boolean {
  return a.name === b.name && (a.kind ?? 'user') === (b.kind ?? 'user') && samePsk(a.psk, b.psk) && sameTexts(a.rules.texts, b.rules.texts);
}

/** Key -> peer, replaced whole on reload. */
export class Allowlist {
  #byKey: Map<string, AllowlistEntry>;

  /** Throws ForwardError 'ERR_POLICY_BAD_PEER' for a duplicate name or key, or a key of the wrong size. */
  constructor(entries: readonly AllowlistEntry[] = []) {
    this.#byKey = validate(entries);
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** The peer holding `publicKey`, or undefined. */
  lookup(publicKey: Uint8Array): AllowlistEntry | undefined {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== PEER_KEY_BYTES) return undefined;
    return this.#byKey.get(keyId(publicKey));
  }

  /** The peer called `name`, or undefined. */
  byName(name: string): AllowlistEntry | undefined {
    for (const e of this.#byKey.values()) if (e.name === name) return e;
    return undefined;
  }

  entries(): AllowlistEntry[] {
    return [...this.#byKey.values()];
  }

  names(): string[] {
    return this.entries().map((e) => e.name);
  }

  /**
   * Replaces every entry at once (a reload). Validates first: on error the list is unchanged.
   * Returns the keys removed, changed and added.
   */
  replaceAll(entries: readonly AllowlistEntry[]): AllowlistDiff {
    const next = validate(entries);
    const removed = new Set<string>();
    const changed = new Set<string>();
    const added = new Set<string>();
    for (const [id, old] of this.#byKey) {
      const now = next.get(id);
      if (now === undefined) removed.add(id);
      else if (!samePeer(old, now)) changed.add(id);
    }
    for (const id of next.keys()) if (!this.#byKey.has(id)) added.add(id);
    this.#byKey = next;
    return { removed, changed, added };
  }
}
