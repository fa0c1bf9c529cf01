/**
 * The portable reference backend on @noble (audited pure JavaScript). Slower than OpenSSL; kept
 * byte-identical to the node backend by a differential test and usable where OpenSSL lacks a
 * primitive.
 */

import { gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { blake2b, blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { NoiseError } from '../errors.js';
import {
  KEY_BYTES,
  NONCE_BYTES,
  TAG_BYTES,
  assertDhKey,
  assertNonZeroDh,
  clampPrivateKey,
  writeNoiseNonce,
  type Aead,
  type CipherName,
  type CryptoBackend,
  type DhPrivateKey,
  type DhPublicKey,
  type HashName,
  type KeyPair,
} from './backend.js';

const HASHES = { BLAKE2s: blake2s, BLAKE2b: blake2b, SHA256: sha256, SHA512: sha512 } as const;

class NobleDhPrivateKey implements DhPrivateKey {
  constructor(
    readonly publicKey: Uint8Array,
    readonly privateKey: Uint8Array,
    readonly owned: boolean,
  ) {}
}

class NobleDhPublicKey implements DhPublicKey {
  constructor(readonly publicKey: Uint8Array) {}
}

function concat(parts: Uint8Array | readonly Uint8Array[]): Uint8Array {
  if (parts instanceof Uint8Array) return parts;
  let total = 0;
  for (const part of parts) total += part.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

class NobleAead implements Aead {
  readonly #cipher: CipherName;
  readonly #nonce = new Uint8Array(NONCE_BYTES);
  readonly #view = new DataView(this.#nonce.buffer);
  #key: Uint8Array | undefined;

  constructor(cipher: CipherName, key: Uint8Array) {
    if (key.length !== KEY_BYTES) throw new RangeError(`cipher key: expected ${KEY_BYTES} bytes, got ${key.length}`);
    this.#cipher = cipher;
    this.#key = Uint8Array.from(key);
  }

  #instance(high: number, low: number, ad: Uint8Array) {
    if (this.#key === undefined) throw new NoiseError('ERR_NOISE_UNUSABLE', 'cipher key was destroyed');
    writeNoiseNonce(this.#view, this.#cipher, high, low);
    if (this.#cipher === 'AESGCM') return gcm(this.#key, Uint8Array.from(this.#nonce), ad);
    return chacha20poly1305(this.#key, Uint8Array.from(this.#nonce), ad);
  }

  seal(high: number, low: number, ad: Uint8Array, plaintext: Uint8Array | readonly Uint8Array[], prefix?: Uint8Array): Uint8Array {
    const sealed = this.#instance(high, low, ad).encrypt(concat(plaintext));
    return prefix === undefined || prefix.length === 0 ? sealed : concat([prefix, sealed]);
  }

  open(high: number, low: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (ciphertext.length < TAG_BYTES) throw new NoiseError('ERR_NOISE_DECRYPT', 'ciphertext shorter than the tag');
    const instance = this.#instance(high, low, ad);
    try {
      return instance.decrypt(ciphertext);
    } catch (err) {
      throw new NoiseError('ERR_NOISE_DECRYPT', 'authentication tag mismatch', { cause: err });
    }
  }

  destroy(): void {
    this.#key?.fill(0);
    this.#key = undefined;
  }
}

function dhRaw(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(privateKey, publicKey);
  } catch (err) {
    throw new NoiseError('ERR_NOISE_INVALID_DH', 'X25519 rejected the public key (low-order point)', { cause: err });
  }
  assertNonZeroDh(shared);
  return shared;
}

function newKeyPair(): KeyPair {
  const privateKey = clampPrivateKey(x25519.utils.randomSecretKey());
  return { publicKey: x25519.getPublicKey(privateKey), privateKey };
}

/** Creates a @noble backend. */
export function createNobleBackend(): CryptoBackend {
  return {
    name: 'noble',
    generateKeyPair: newKeyPair,

    publicKeyFromPrivate(privateKey: Uint8Array): Uint8Array {
      assertDhKey(privateKey, 'X25519 private key');
      return x25519.getPublicKey(privateKey);
    },

    generateDhKey(): DhPrivateKey {
      const pair = newKeyPair();
      return new NobleDhPrivateKey(pair.publicKey, pair.privateKey, true);
    },

    importDhKey(pair: KeyPair): DhPrivateKey {
      assertDhKey(pair.privateKey, 'X25519 private key');
      assertDhKey(pair.publicKey, 'X25519 public key');
      return new NobleDhPrivateKey(pair.publicKey, pair.privateKey, false);
    },

    importPublicKey(publicKey: Uint8Array): DhPublicKey {
      assertDhKey(publicKey, 'X25519 public key');
      return new NobleDhPublicKey(publicKey);
    },

    dh(local: DhPrivateKey, remote: DhPublicKey): Uint8Array {
      if (!(local instanceof NobleDhPrivateKey) || !(remote instanceof NobleDhPublicKey)) {
        throw new TypeError('dh: key handles come from another backend');
      }
      return dhRaw(local.privateKey, remote.publicKey);
    },

    releaseDhKey(key: DhPrivateKey): void {
      // Only keys this backend generated are its to wipe; imported pairs belong to the caller.
      if (key instanceof NobleDhPrivateKey && key.owned) key.privateKey.fill(0);
    },

    createAead(cipher: CipherName, key: Uint8Array): Aead {
      return new NobleAead(cipher, key);
    },

    hash(name: HashName, parts: readonly Uint8Array[]): Uint8Array {
      const h = HASHES[name].create();
      for (const part of parts) h.update(part);
      return h.digest();
    },

    hmac(name: HashName, key: Uint8Array, parts: readonly Uint8Array[]): Uint8Array {
      const h = hmac.create(HASHES[name], key);
      for (const part of parts) h.update(part);
      return h.digest();
    },
  };
}

/** The process-wide @noble backend. */
export const nobleBackend: CryptoBackend = createNobleBackend();
