/**
 * The default crypto backend on node:crypto (OpenSSL).
 *
 * - X25519 runs on KeyObjects. Raw private keys are imported as PKCS#8 DER (never as strings, so
 *   nothing secret lands on the V8 heap as an unwipeable string) and cached for static keys. A
 *   JWK import would be ~10x faster (~0.07 vs ~0.7 ms) but costs only once per static key, and
 *   ephemerals never pass through an import (generateKeyPairSync), so secrecy wins here;
 *   public keys are imported as JWK (about 6x faster than SPKI DER). Public keys of our own keys
 *   are computed as X25519(k, 9), which is cheaper than an SPKI export, and no freshly generated
 *   key is ever exported as JWK (Node 20 can deadlock there, SECURITY.md #13).
 * - The static-static DH result (ss) of a cached local key with a cached remote key is memoised
 *   on the local key handle, as WireGuard precomputes it per peer: it is derivable from the cached
 *   private key anyway, and it saves two of the ten X25519 operations of an IK handshake pair.
 * - BLAKE2s of handshake-sized inputs (hash, HMAC, HKDF) runs in JavaScript (`blake2s.ts`,
 *   `hmac-blake2s.ts`): each node:crypto call costs more set-up than the hashing itself, and HKDF
 *   can then reuse its padded-key states. Larger inputs go to OpenSSL.
 * - Other hashes and HMACs of handshake-sized inputs use the one-shot `crypto.hash()` over a
 *   reused scratch buffer (HMAC built from two hashes, RFC 2104), which avoids the per-call cost
 *   of a Hash/Hmac stream object; the scratch buffer is wiped after every use.
 * - AEAD: chacha20-poly1305 and aes-256-gcm, keyed from a raw key buffer that destroy() wipes.
 *   Decryption returns plaintext only after `final()` has verified the tag (SECURITY.md #2).
 *   Given the native AEAD binding (native-aead.ts), the backend is called 'native' and its AEADs
 *   are the addon's (same OpenSSL ciphers, no per-record set-up or output copies); everything
 *   else stays as described here.
 */

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hash as oneShotHash,
  type KeyObject,
} from 'node:crypto';
import { NoiseError } from '../errors.js';
import {
  DH_BYTES,
  KEY_BYTES,
  NONCE_BYTES,
  TAG_BYTES,
  allocOutput,
  assertDhKey,
  assertNonZeroDh,
  clampPrivateKey,
  hkdfFromHmac,
  partsLength,
  writeNoiseNonce,
  type Aead,
  type CipherName,
  type CryptoBackend,
  type DhPrivateKey,
  type DhPublicKey,
  type HashName,
  type KeyPair,
} from './backend.js';
import { BLAKE2S_BLOCK_BYTES } from './blake2s.js';
import { BLAKE2S_JS_MAX_BYTES, blake2sParts, hkdfBlake2s, hmacBlake2s } from './hmac-blake2s.js';
import { NativeAead, type NativeAeadBinding } from './native-aead.js';

/** PKCS#8 header of an X25519 private key (RFC 8410); the raw key follows it. */
const PKCS8_X25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
/** Remote static public keys kept as KeyObjects; bounded, oldest evicted first. */
const PUBLIC_KEY_CACHE_ENTRIES = 1024;

const OPENSSL_HASH: Readonly<Record<HashName, string>> = {
  BLAKE2s: 'blake2s256',
  BLAKE2b: 'blake2b512',
  SHA256: 'sha256',
  SHA512: 'sha512',
};

class NodeDhPrivateKey implements DhPrivateKey {
  /** Memoised DH outputs with cached remote static keys; only set on cached (static) handles. */
  readonly staticShared: WeakMap<NodeDhPublicKey, Uint8Array> | undefined;

  constructor(
    readonly publicKey: Uint8Array,
    readonly keyObject: KeyObject,
    cached = false,
  ) {
    this.staticShared = cached ? new WeakMap() : undefined;
  }
}

class NodeDhPublicKey implements DhPublicKey {
  constructor(
    readonly publicKey: Uint8Array,
    readonly keyObject: KeyObject,
    readonly cached = false,
  ) {}
}

function jwkPublicKey(publicKey: Uint8Array): KeyObject {
  const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64url');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
}

/** The X25519 base point u = 9: X25519(k, 9) is k's public key. */
const BASE_POINT = jwkPublicKey(Uint8Array.of(9, ...new Uint8Array(31)));

function importPrivateKeyObject(privateKey: Uint8Array): KeyObject {
  assertDhKey(privateKey, 'X25519 private key');
  const der = Buffer.alloc(PKCS8_X25519_PREFIX.length + DH_BYTES);
  der.set(PKCS8_X25519_PREFIX, 0);
  der.set(privateKey, PKCS8_X25519_PREFIX.length);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

function rawDh(privateKey: KeyObject, publicKey: KeyObject): Uint8Array {
  let shared: Uint8Array;
  try {
    shared = diffieHellman({ privateKey, publicKey });
  } catch (err) {
    // OpenSSL refuses low-order points ("failed during derivation"): same outcome as a zero output.
    throw new NoiseError('ERR_NOISE_INVALID_DH', 'X25519 rejected the public key (low-order point)', { cause: err });
  }
  assertNonZeroDh(shared);
  return shared;
}

function publicOf(privateKey: KeyObject): Uint8Array {
  return rawDh(privateKey, BASE_POINT);
}

class NodeAead implements Aead {
  // Typed as one AEAD for the overloads; both AEADs share the setAAD/getAuthTag surface.
  readonly #algorithm: 'chacha20-poly1305' | 'aes-256-gcm';
  readonly #cipher: CipherName;
  readonly #nonce = Buffer.alloc(NONCE_BYTES);
  readonly #nonceView = new DataView(this.#nonce.buffer, this.#nonce.byteOffset, NONCE_BYTES);
  /**
   * The raw key, handed to each createCipheriv. Unlike a KeyObject it can be wiped on destroy(),
   * and it saves a createSecretKey per key: handshake keys are mostly used once or twice.
   * Buffer.alloc never hands out a slice of the shared pool.
   */
  #key: Buffer | undefined;

  constructor(cipher: CipherName, key: Uint8Array) {
    if (key.length !== KEY_BYTES) throw new RangeError(`cipher key: expected ${KEY_BYTES} bytes, got ${key.length}`);
    this.#algorithm = cipher === 'ChaChaPoly' ? 'chacha20-poly1305' : 'aes-256-gcm';
    this.#cipher = cipher;
    this.#key = Buffer.alloc(KEY_BYTES);
    this.#key.set(key);
  }

  #nonceFor(high: number, low: number): Buffer {
    writeNoiseNonce(this.#nonceView, this.#cipher, high, low);
    return this.#nonce;
  }

  #liveKey(): Buffer {
    if (this.#key === undefined) throw new NoiseError('ERR_NOISE_UNUSABLE', 'cipher key was destroyed');
    return this.#key;
  }

  seal(high: number, low: number, ad: Uint8Array, plaintext: Uint8Array | readonly Uint8Array[], prefix?: Uint8Array): Uint8Array {
    const cipher = createCipheriv(this.#algorithm as 'aes-256-gcm', this.#liveKey(), this.#nonceFor(high, low), { authTagLength: TAG_BYTES });
    if (ad.length > 0) cipher.setAAD(ad);
    const length = partsLength(plaintext);
    const start = prefix?.length ?? 0;
    const out = allocOutput(start + length + TAG_BYTES);
    if (prefix !== undefined) out.set(prefix, 0);
    if (plaintext instanceof Uint8Array) {
      out.set(cipher.update(plaintext), start);
    } else {
      let offset = start;
      for (const part of plaintext) {
        if (part.length === 0) continue;
        out.set(cipher.update(part), offset);
        offset += part.length;
      }
    }
    cipher.final();
    out.set(cipher.getAuthTag(), start + length);
    return out;
  }

  open(high: number, low: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (ciphertext.length < TAG_BYTES) throw new NoiseError('ERR_NOISE_DECRYPT', 'ciphertext shorter than the tag');
    const length = ciphertext.length - TAG_BYTES;
    const decipher = createDecipheriv(this.#algorithm as 'aes-256-gcm', this.#liveKey(), this.#nonceFor(high, low), { authTagLength: TAG_BYTES });
    if (ad.length > 0) decipher.setAAD(ad);
    decipher.setAuthTag(ciphertext.subarray(length));
    const plaintext = decipher.update(ciphertext.subarray(0, length));
    try {
      // update() has already produced unauthenticated plaintext; only final() checks the tag.
      decipher.final();
    } catch (err) {
      plaintext.fill(0);
      throw new NoiseError('ERR_NOISE_DECRYPT', 'authentication tag mismatch', { cause: err });
    }
    return plaintext;
  }

  destroy(): void {
    this.#key?.fill(0);
    this.#key = undefined;
  }
}

/** HMAC block size per hash (RFC 2104 "B"). */
const BLOCK_BYTES: Readonly<Record<HashName, number>> = { BLAKE2s: 64, SHA256: 64, BLAKE2b: 128, SHA512: 128 };
/** Inputs up to this size are hashed one-shot from the scratch buffer; larger ones stream. */
const ONE_SHOT_MAX_BYTES = 1024;
/** Shared scratch for one-shot hashing: a padded key block plus a message. Wiped after each use. */
const scratch = new Uint8Array(128 + ONE_SHOT_MAX_BYTES);

function totalLength(parts: readonly Uint8Array[]): number {
  let total = 0;
  for (const part of parts) total += part.length;
  return total;
}

function hashOf(name: HashName, parts: readonly Uint8Array[]): Uint8Array {
  const total = totalLength(parts);
  if (name === 'BLAKE2s' && total <= BLAKE2S_JS_MAX_BYTES) return blake2sParts(parts);
  if (total > ONE_SHOT_MAX_BYTES) {
    const h = createHash(OPENSSL_HASH[name]);
    for (const part of parts) h.update(part);
    return h.digest();
  }
  let offset = 0;
  for (const part of parts) {
    scratch.set(part, offset);
    offset += part.length;
  }
  const digest = oneShotHash(OPENSSL_HASH[name], scratch.subarray(0, total), 'buffer');
  scratch.fill(0, 0, total);
  return digest;
}

/** Writes (key padded to the block) XOR pad into scratch[0, block). */
function padKey(key: Uint8Array, block: number, pad: number): void {
  for (let i = 0; i < key.length; i++) scratch[i] = (key[i] as number) ^ pad;
  scratch.fill(pad, key.length, block);
}

/** HMAC (RFC 2104) = H((K ^ opad) || H((K ^ ipad) || m)), from two one-shot hashes. */
function hmacOf(name: HashName, key: Uint8Array, parts: readonly Uint8Array[]): Uint8Array {
  const block = BLOCK_BYTES[name];
  const total = totalLength(parts);
  if (name === 'BLAKE2s' && key.length <= BLAKE2S_BLOCK_BYTES && total <= BLAKE2S_JS_MAX_BYTES) return hmacBlake2s(key, parts);
  if (key.length > block || total > ONE_SHOT_MAX_BYTES) {
    const h = createHmac(OPENSSL_HASH[name], key);
    for (const part of parts) h.update(part);
    return h.digest();
  }
  const algorithm = OPENSSL_HASH[name];
  padKey(key, block, 0x36);
  let offset = block;
  for (const part of parts) {
    scratch.set(part, offset);
    offset += part.length;
  }
  const inner = oneShotHash(algorithm, scratch.subarray(0, offset), 'buffer');
  padKey(key, block, 0x5c);
  scratch.set(inner, block);
  const outer = oneShotHash(algorithm, scratch.subarray(0, block + inner.length), 'buffer');
  scratch.fill(0, 0, Math.max(offset, block + inner.length));
  inner.fill(0);
  return outer;
}

export interface NodeBackendOptions {
  /** Seal and open through the native AEAD (a binding that passed loadNativeAead's check). */
  readonly nativeAead?: NativeAeadBinding;
}

/** Creates a node:crypto backend with its own key caches. */
export function createNodeBackend(options: NodeBackendOptions = {}): CryptoBackend {
  const native = options.nativeAead;
  // Keyed by the private key array itself: a key pair reused across handshakes imports once.
  const privateKeys = new WeakMap<Uint8Array, NodeDhPrivateKey>();
  const publicKeys = new Map<string, NodeDhPublicKey>();

  const backend: CryptoBackend = {
    name: native === undefined ? 'node' : 'native',

    generateKeyPair(): KeyPair {
      const { privateKey: keyObject } = generateKeyPairSync('x25519');
      const der = keyObject.export({ type: 'pkcs8', format: 'der' });
      const privateKey = Buffer.alloc(DH_BYTES);
      privateKey.set(der.subarray(der.length - DH_BYTES));
      der.fill(0);
      // OpenSSL already stores clamped bytes; clamping again documents the wg convention.
      clampPrivateKey(privateKey);
      const publicKey = publicOf(keyObject);
      privateKeys.set(privateKey, new NodeDhPrivateKey(publicKey, keyObject, true));
      return { publicKey, privateKey };
    },

    publicKeyFromPrivate(privateKey: Uint8Array): Uint8Array {
      return publicOf(importPrivateKeyObject(privateKey));
    },

    generateDhKey(): DhPrivateKey {
      const { privateKey } = generateKeyPairSync('x25519');
      return new NodeDhPrivateKey(publicOf(privateKey), privateKey);
    },

    importDhKey(pair: KeyPair, cache: boolean): DhPrivateKey {
      assertDhKey(pair.publicKey, 'X25519 public key');
      const cached = privateKeys.get(pair.privateKey);
      if (cached !== undefined && Buffer.compare(cached.publicKey, pair.publicKey) === 0) return cached;
      const key = new NodeDhPrivateKey(Uint8Array.from(pair.publicKey), importPrivateKeyObject(pair.privateKey), cache);
      if (cache) privateKeys.set(pair.privateKey, key);
      return key;
    },

    importPublicKey(publicKey: Uint8Array, cache: boolean): DhPublicKey {
      assertDhKey(publicKey, 'X25519 public key');
      if (!cache) return new NodeDhPublicKey(publicKey, jwkPublicKey(publicKey));
      const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64');
      let key = publicKeys.get(id);
      if (key === undefined) {
        key = new NodeDhPublicKey(Uint8Array.from(publicKey), jwkPublicKey(publicKey), true);
        if (publicKeys.size >= PUBLIC_KEY_CACHE_ENTRIES) publicKeys.delete(publicKeys.keys().next().value as string);
        publicKeys.set(id, key);
      }
      return key;
    },

    dh(local: DhPrivateKey, remote: DhPublicKey): Uint8Array {
      if (!(local instanceof NodeDhPrivateKey) || !(remote instanceof NodeDhPublicKey)) {
        throw new TypeError('dh: key handles come from another backend');
      }
      const memo = remote.cached ? local.staticShared : undefined;
      if (memo === undefined) return rawDh(local.keyObject, remote.keyObject);
      let shared = memo.get(remote);
      if (shared === undefined) {
        shared = rawDh(local.keyObject, remote.keyObject);
        memo.set(remote, Uint8Array.from(shared));
        return shared;
      }
      // The engine wipes what dh() returns: hand out a copy.
      return Uint8Array.from(shared);
    },

    releaseDhKey(): void {
      // KeyObjects hold their secret in OpenSSL memory, freed when the handle is collected.
    },

    createAead(cipher: CipherName, key: Uint8Array): Aead {
      return native === undefined ? new NodeAead(cipher, key) : new NativeAead(native, cipher, key);
    },

    hash: hashOf,
    hmac: hmacOf,

    hkdf(name: HashName, chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: 2 | 3): Uint8Array[] {
      if (name === 'BLAKE2s' && chainingKey.length <= BLAKE2S_BLOCK_BYTES && inputKeyMaterial.length <= BLAKE2S_JS_MAX_BYTES) {
        return hkdfBlake2s(chainingKey, inputKeyMaterial, outputs);
      }
      return hkdfFromHmac(backend, name, chainingKey, inputKeyMaterial, outputs);
    },
  };
  return backend;
}

/** The process-wide node:crypto backend. */
export const nodeBackend: CryptoBackend = createNodeBackend();
