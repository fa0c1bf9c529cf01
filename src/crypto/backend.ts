/**
 * The crypto backend interface used by the Noise engine: X25519, the two Noise AEADs and the four
 * Noise hash functions (Noise rev 34, sections 4.1-4.3 and 12). Three implementations exist:
 * node:crypto (OpenSSL), the same with the optional native AEAD for records (the default when it
 * is built) and @noble (the portable reference); differential tests keep them byte-identical.
 *
 * X25519 keys are handled through opaque handles so that a backend can keep its own key objects
 * (OpenSSL KeyObjects) and cache them for static keys; the engine never sees them.
 */

import { NoiseError } from '../errors.js';

/** Noise DH output and public key length for 25519 (DHLEN). */
export const DH_BYTES = 32;
/** Cipher key length (32 for both Noise ciphers). */
export const KEY_BYTES = 32;
/** AEAD authentication tag length. */
export const TAG_BYTES = 16;
/** AEAD nonce length on the wire of the primitive (96 bits). */
export const NONCE_BYTES = 12;

export type CipherName = 'ChaChaPoly' | 'AESGCM';
export type HashName = 'BLAKE2s' | 'BLAKE2b' | 'SHA256' | 'SHA512';
/** 'native': the node backend with the optional native AEAD (native-aead.ts) for records. */
export type BackendName = 'node' | 'native' | 'noble';

/** Noise HASHLEN per hash function. */
export const HASH_BYTES: Readonly<Record<HashName, number>> = {
  BLAKE2s: 32,
  SHA256: 32,
  BLAKE2b: 64,
  SHA512: 64,
};

/** An X25519 key pair as raw 32-byte strings. */
export interface KeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

/** A backend's handle for a local X25519 private key; only its own backend may use it. */
export interface DhPrivateKey {
  readonly publicKey: Uint8Array;
}

/** A backend's handle for a remote X25519 public key. */
export interface DhPublicKey {
  readonly publicKey: Uint8Array;
}

/**
 * One AEAD key. Nonces are the Noise 64-bit counter given as two unsigned 32-bit halves so the hot
 * path needs no bigint; the backend lays them out as the cipher requires (section 12.3/12.4).
 */
export interface Aead {
  /**
   * ENCRYPT(k, n, ad, plaintext): ciphertext || tag in one freshly allocated array, after
   * `prefix` when given (prefix || ciphertext || tag: a record header costs no second copy).
   */
  seal(nonceHigh: number, nonceLow: number, ad: Uint8Array, plaintext: Uint8Array | readonly Uint8Array[], prefix?: Uint8Array): Uint8Array;
  /**
   * DECRYPT(k, n, ad, ciphertext). The tag is verified before any plaintext is returned; on failure
   * throws NoiseError 'ERR_NOISE_DECRYPT' and releases nothing. `inPlace` says the caller owns
   * `ciphertext` and lets the backend write the plaintext over it (the result is then a view of
   * it, and on failure its bytes are wiped); a backend may ignore it and allocate.
   */
  open(nonceHigh: number, nonceLow: number, ad: Uint8Array, ciphertext: Uint8Array, inPlace?: boolean): Uint8Array;
  /** Drops (and where possible wipes) the key. */
  destroy(): void;
}

export interface CryptoBackend {
  readonly name: BackendName;
  /** A fresh X25519 key pair with raw bytes (private key clamped as WireGuard stores it). */
  generateKeyPair(): KeyPair;
  /** X25519 public key of a raw private key. */
  publicKeyFromPrivate(privateKey: Uint8Array): Uint8Array;
  /** A fresh ephemeral key for the engine; the raw private key may never leave the backend. */
  generateDhKey(): DhPrivateKey;
  /** A handle for a given key pair; `cache` keeps it for reuse (static keys). */
  importDhKey(pair: KeyPair, cache: boolean): DhPrivateKey;
  /** A handle for a remote public key; `cache` keeps it for reuse (static keys). */
  importPublicKey(publicKey: Uint8Array, cache: boolean): DhPublicKey;
  /** DH(local, remote); throws NoiseError 'ERR_NOISE_INVALID_DH' on a low-order point / zero output. */
  dh(local: DhPrivateKey, remote: DhPublicKey): Uint8Array;
  /** Wipes what the backend can of an uncached handle. */
  releaseDhKey(key: DhPrivateKey): void;
  createAead(cipher: CipherName, key: Uint8Array): Aead;
  hash(name: HashName, parts: readonly Uint8Array[]): Uint8Array;
  hmac(name: HashName, key: Uint8Array, parts: readonly Uint8Array[]): Uint8Array;
  /**
   * Optional faster HKDF (same contract as the `hkdf` function below, which calls it when
   * present): a backend may reuse HMAC state across the outputs of one temp_key.
   */
  hkdf?(name: HashName, chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: 2 | 3): Uint8Array[];
}

const ONE = Uint8Array.of(1);

/**
 * HKDF(chaining_key, input_key_material, num_outputs) as Noise section 4.3 defines it (HMAC-based,
 * outputs of HASHLEN bytes, each a fresh array). Intermediate secrets are wiped.
 */
export function hkdf(backend: CryptoBackend, hash: HashName, chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: 2 | 3): Uint8Array[] {
  if (backend.hkdf !== undefined) return backend.hkdf(hash, chainingKey, inputKeyMaterial, outputs);
  return hkdfFromHmac(backend, hash, chainingKey, inputKeyMaterial, outputs);
}

/** HKDF from the backend's HMAC alone (the section 4.3 definition, step by step). */
export function hkdfFromHmac(backend: CryptoBackend, hash: HashName, chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: 2 | 3): Uint8Array[] {
  const tempKey = backend.hmac(hash, chainingKey, [inputKeyMaterial]);
  const out1 = backend.hmac(hash, tempKey, [ONE]);
  const out2 = backend.hmac(hash, tempKey, [out1, Uint8Array.of(2)]);
  const result = [out1, out2];
  if (outputs === 3) result.push(backend.hmac(hash, tempKey, [out2, Uint8Array.of(3)]));
  tempKey.fill(0);
  return result;
}

/** Throws 'ERR_NOISE_INVALID_DH' when a DH output is all zeros (checked without early exit). */
export function assertNonZeroDh(shared: Uint8Array): void {
  let acc = 0;
  for (let i = 0; i < shared.length; i++) acc |= shared[i] as number;
  if (acc === 0) {
    throw new NoiseError('ERR_NOISE_INVALID_DH', 'X25519 produced an all-zero shared secret (low-order public key)');
  }
}

/** Checks a raw 32-byte X25519 key at the backend edge. */
export function assertDhKey(key: Uint8Array, what: string): void {
  if (!(key instanceof Uint8Array)) throw new TypeError(`${what}: expected a Uint8Array`);
  if (key.length !== DH_BYTES) throw new RangeError(`${what}: expected ${DH_BYTES} bytes, got ${key.length}`);
}

/** Total length of a plaintext given as one array or as parts. */
export function partsLength(plaintext: Uint8Array | readonly Uint8Array[]): number {
  if (plaintext instanceof Uint8Array) return plaintext.length;
  let total = 0;
  for (const part of plaintext) total += part.length;
  return total;
}

/**
 * Writes the AEAD nonce of Noise counter `high:low` into `view` (NONCE_BYTES long, first four bytes
 * zero): 32 zero bits then the 64-bit counter, little-endian for ChaChaPoly (Noise 12.3) and
 * big-endian for AESGCM (12.4). Every backend lays its nonces out here.
 */
export function writeNoiseNonce(view: DataView, cipher: CipherName, high: number, low: number): void {
  if (cipher === 'AESGCM') {
    view.setUint32(4, high, false);
    view.setUint32(8, low, false);
  } else {
    view.setUint32(4, low, true);
    view.setUint32(8, high, true);
  }
}

/** Below this size Buffer.allocUnsafe would hand out a slice of the shared pool. */
const UNPOOLED_ALLOC_BYTES = 4096;

/**
 * An AEAD output buffer of `length` bytes (contents undefined unless small): Buffer.allocUnsafe,
 * which skips zero-filling, only from the size where it gets an ArrayBuffer of its own.
 */
export function allocOutput(length: number): Uint8Array {
  return length >= UNPOOLED_ALLOC_BYTES ? Buffer.allocUnsafe(length) : new Uint8Array(length);
}

/** Clamps an X25519 private key in place as `wg genkey` stores it (RFC 7748 section 5). */
export function clampPrivateKey(privateKey: Uint8Array): Uint8Array {
  privateKey[0] &= 248;
  privateKey[31] &= 127;
  privateKey[31] |= 64;
  return privateKey;
}
