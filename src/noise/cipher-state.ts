/**
 * CipherState (Noise rev 34, section 5.1): a key k and a 64-bit nonce n.
 *
 * The nonce is kept as two unsigned 32-bit halves so the per-record hot path does no bigint
 * arithmetic; `nonce` and `setNonce` expose it as a bigint for spec-exact values up to 2^64-1.
 * The counter advances only after a successful encryption or decryption (SECURITY.md #9), and
 * n = 2^64-1 is reserved: a message at that nonce throws 'ERR_NOISE_NONCE_EXHAUSTED'.
 */

import { KEY_BYTES, TAG_BYTES, partsLength, type Aead, type CipherName, type CryptoBackend } from '../crypto/backend.js';
import { NoiseError } from '../errors.js';
import { MAX_MESSAGE_BYTES, MAX_NONCE } from './constants.js';

const UINT32_LIMIT = 0x1_0000_0000;
const UINT32_MAX = 0xffff_ffff;
const EMPTY = new Uint8Array(0);

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A Noise CipherState: the AEAD key and nonce of one direction (or of the handshake). */
export class CipherState {
  readonly #cipher: CipherName;
  readonly #backend: CryptoBackend;
  #aead: Aead | undefined;
  /** A key not yet handed to the backend: handshakes replace most keys before using them. */
  #pendingKey: Uint8Array | undefined;
  #nonceHigh = 0;
  #nonceLow = 0;

  constructor(cipher: CipherName, backend: CryptoBackend, key?: Uint8Array) {
    this.#cipher = cipher;
    this.#backend = backend;
    this.initializeKey(key);
  }

  /** InitializeKey(key): sets k (copied; the caller may wipe its copy) and n = 0. */
  initializeKey(key: Uint8Array | undefined): void {
    this.destroy();
    if (key !== undefined) {
      if (key.length !== KEY_BYTES) throw new RangeError(`cipher key: expected ${KEY_BYTES} bytes, got ${key.length}`);
      this.#pendingKey = Uint8Array.from(key);
    }
    this.#nonceHigh = 0;
    this.#nonceLow = 0;
  }

  hasKey(): boolean {
    return this.#aead !== undefined || this.#pendingKey !== undefined;
  }

  /** The backend cipher for k, created on first use. */
  #cipherForKey(): Aead | undefined {
    if (this.#aead === undefined && this.#pendingKey !== undefined) {
      this.#aead = this.#backend.createAead(this.#cipher, this.#pendingKey);
      this.#pendingKey.fill(0);
      this.#pendingKey = undefined;
    }
    return this.#aead;
  }

  /** The next nonce n. */
  get nonce(): bigint {
    return (BigInt(this.#nonceHigh) << 32n) | BigInt(this.#nonceLow);
  }

  /** SetNonce(nonce): 0 <= n <= 2^64-1. */
  setNonce(nonce: bigint | number): void {
    const n = typeof nonce === 'bigint' ? nonce : Number.isSafeInteger(nonce) ? BigInt(nonce) : -1n;
    if (n < 0n || n > MAX_NONCE) throw new RangeError('nonce: expected an integer in [0, 2^64-1]');
    this.#nonceHigh = Number(n >> 32n);
    this.#nonceLow = Number(n & 0xffff_ffffn);
  }

  #checkNonce(): void {
    if (this.#nonceHigh === UINT32_MAX && this.#nonceLow === UINT32_MAX) {
      throw new NoiseError('ERR_NOISE_NONCE_EXHAUSTED', 'nonce 2^64-1 reached: this key must not be used again');
    }
  }

  #advance(): void {
    this.#nonceLow += 1;
    if (this.#nonceLow === UINT32_LIMIT) {
      this.#nonceLow = 0;
      this.#nonceHigh += 1;
    }
  }

  /**
   * EncryptWithAd(ad, plaintext): ciphertext || tag, or the plaintext itself when there is no key.
   * `plaintext` may be given in parts (encrypted as their concatenation, without a copy first).
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array | readonly Uint8Array[]): Uint8Array {
    return this.encryptWithAdAfter(ad, plaintext);
  }

  /**
   * EncryptWithAd, with `prefix` (not encrypted, not authenticated here) copied in front of the
   * result: prefix || ciphertext || tag in one array. Callers use it for a record header.
   */
  encryptWithAdAfter(ad: Uint8Array, plaintext: Uint8Array | readonly Uint8Array[], prefix?: Uint8Array): Uint8Array {
    const length = partsLength(plaintext);
    const aead = this.#cipherForKey();
    if (length + (aead === undefined ? 0 : TAG_BYTES) > MAX_MESSAGE_BYTES) {
      throw new NoiseError('ERR_NOISE_MESSAGE_TOO_LONG', `plaintext of ${length} bytes exceeds the ${MAX_MESSAGE_BYTES}-byte Noise message limit`);
    }
    if (aead === undefined) {
      if (prefix !== undefined) return concat([prefix, ...(plaintext instanceof Uint8Array ? [plaintext] : plaintext)], prefix.length + length);
      return plaintext instanceof Uint8Array ? plaintext : concat(plaintext, length);
    }
    this.#checkNonce();
    const ciphertext = aead.seal(this.#nonceHigh, this.#nonceLow, ad, plaintext, prefix);
    this.#advance();
    return ciphertext;
  }

  /**
   * DecryptWithAd(ad, ciphertext): the plaintext; on failure throws and n does not change.
   * `inPlace`: the caller owns `ciphertext` and lets the backend decrypt over it (Aead.open).
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array, inPlace = false): Uint8Array {
    if (ciphertext.length > MAX_MESSAGE_BYTES) {
      throw new NoiseError('ERR_NOISE_MESSAGE_TOO_LONG', `message of ${ciphertext.length} bytes exceeds the ${MAX_MESSAGE_BYTES}-byte Noise limit`);
    }
    const aead = this.#cipherForKey();
    if (aead === undefined) return ciphertext;
    if (ciphertext.length < TAG_BYTES) {
      throw new NoiseError('ERR_NOISE_MESSAGE_TOO_SHORT', `message of ${ciphertext.length} bytes is shorter than the ${TAG_BYTES}-byte tag`);
    }
    this.#checkNonce();
    const plaintext = aead.open(this.#nonceHigh, this.#nonceLow, ad, ciphertext, inPlace);
    this.#advance();
    return plaintext;
  }

  /** Rekey(): k = the first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, zeros) (section 4.2); n is unchanged. */
  rekey(): void {
    const aead = this.#cipherForKey();
    if (aead === undefined) throw new NoiseError('ERR_NOISE_MISSING_KEY', 'rekey: the cipher state has no key');
    const block = aead.seal(UINT32_MAX, UINT32_MAX, EMPTY, new Uint8Array(KEY_BYTES));
    const key = block.subarray(0, KEY_BYTES);
    aead.destroy();
    this.#aead = this.#backend.createAead(this.#cipher, key);
    block.fill(0);
  }

  /** Forgets the key; the state then has none. */
  destroy(): void {
    this.#aead?.destroy();
    this.#aead = undefined;
    this.#pendingKey?.fill(0);
    this.#pendingKey = undefined;
  }
}
