/**
 * Key helpers in WireGuard's conventions: keys are standard base64 of 32 raw bytes (44 characters
 * ending in '='), fingerprints are the base64 public key (as `wg show` prints it), and generated
 * private keys are stored clamped (as `wg genkey` does).
 */

import { timingSafeEqual } from 'node:crypto';
import { InputError } from '../errors.js';
import { DH_BYTES, type KeyPair } from './backend.js';
import { defaultBackend } from './get-backend.js';

export type { KeyPair } from './backend.js';

/** Length of a base64-encoded 32-byte key. */
export const ENCODED_KEY_CHARS = 44;
const BASE64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** A fresh X25519 key pair (private key clamped, allocated outside Buffer's shared pool). */
export function generateKeyPair(): KeyPair {
  return defaultBackend.generateKeyPair();
}

/** The X25519 public key of a 32-byte private key. */
export function publicKeyFromPrivate(privateKey: Uint8Array): Uint8Array {
  if (!(privateKey instanceof Uint8Array) || privateKey.length !== DH_BYTES) {
    throw new InputError('ERR_INVALID_KEY', `private key: expected ${DH_BYTES} bytes`);
  }
  return defaultBackend.publicKeyFromPrivate(privateKey);
}

/** Standard base64 of a 32-byte key (WireGuard format). */
export function encodeKey(key: Uint8Array): string {
  if (!(key instanceof Uint8Array) || key.length !== DH_BYTES) {
    throw new InputError('ERR_INVALID_KEY', `key: expected ${DH_BYTES} bytes, got ${key instanceof Uint8Array ? key.length : typeof key}`);
  }
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
}

/**
 * Parses a WireGuard-format key. `what` names the key in the error ("private key in
 * /etc/twoway/key"); the input itself is never echoed since it may be a secret.
 */
export function decodeKey(text: string, what: string): Uint8Array {
  if (typeof text !== 'string') throw new InputError('ERR_INVALID_KEY', `${what}: expected a base64 string`);
  if (text.length !== ENCODED_KEY_CHARS) {
    throw new InputError(
      'ERR_INVALID_KEY',
      `${what}: expected ${ENCODED_KEY_CHARS} base64 characters encoding ${DH_BYTES} bytes, got ${text.length} characters`,
    );
  }
  // The last character's low bits must be zero, so every key has exactly one spelling.
  if (!BASE64_KEY.test(text)) {
    throw new InputError('ERR_INVALID_KEY', `${what}: not a canonical standard-base64 encoding of ${DH_BYTES} bytes`);
  }
  const out = Buffer.alloc(DH_BYTES);
  out.write(text, 'base64');
  return out;
}

/** Fingerprint of a public key: its base64 form, as `wg show` prints it. Never pass a private key. */
export function fingerprint(publicKey: Uint8Array): string {
  return encodeKey(publicKey);
}

/** Constant-time comparison; different lengths compare unequal (without throwing). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** Overwrites secrets with zeros. */
export function wipe(...buffers: ReadonlyArray<Uint8Array | undefined>): void {
  for (const buffer of buffers) buffer?.fill(0);
}
