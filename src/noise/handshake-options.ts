/** Options of a HandshakeState and their validation at the API edge. */

import { DH_BYTES, type CryptoBackend, type KeyPair } from '../crypto/backend.js';
import { InputError, NoiseError } from '../errors.js';
import { PSK_BYTES } from './constants.js';

/** Initialize() arguments (Noise section 5.3) plus psks and the crypto backend (default: node). */
export interface HandshakeOptions {
  readonly protocolName: string;
  readonly initiator: boolean;
  readonly prologue?: Uint8Array;
  /** This party's static key pair. */
  readonly s?: KeyPair;
  /** A fixed ephemeral key pair (test vectors); normally generated. */
  readonly e?: KeyPair;
  /** The remote party's static public key, when known in advance. */
  readonly rs?: Uint8Array;
  /** The remote party's ephemeral public key, for patterns with an "e" pre-message. */
  readonly re?: Uint8Array;
  /** One 32-byte psk per psk modifier, in the order the tokens are processed. */
  readonly psks?: readonly Uint8Array[];
  readonly backend?: CryptoBackend;
}

/** A 32-byte X25519 public or private key. */
export function checkKey(key: unknown, what: string): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== DH_BYTES) {
    throw new InputError('ERR_INVALID_KEY', `${what}: expected a ${DH_BYTES}-byte Uint8Array`);
  }
  return key;
}

/** Both halves of a key pair. */
export function checkKeyPair(pair: KeyPair, what: string): KeyPair {
  checkKey(pair.publicKey, `${what} public key`);
  checkKey(pair.privateKey, `${what} private key`);
  return pair;
}

/** Validates and copies psks: exactly one 32-byte psk per psk modifier. */
export function checkPsks(psks: readonly Uint8Array[], expected: number): Uint8Array[] {
  if (!Array.isArray(psks) || psks.length !== expected) {
    throw new NoiseError('ERR_NOISE_BAD_PSK', `expected ${expected} psk(s) for this protocol, got ${Array.isArray(psks) ? psks.length : typeof psks}`);
  }
  return psks.map((psk, i) => {
    if (!(psk instanceof Uint8Array) || psk.length !== PSK_BYTES) {
      throw new NoiseError('ERR_NOISE_BAD_PSK', `psk ${i}: expected ${PSK_BYTES} bytes`);
    }
    return Uint8Array.from(psk);
  });
}
