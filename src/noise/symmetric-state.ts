/**
 * SymmetricState (Noise rev 34, section 5.2): the chaining key ck, the handshake hash h and a
 * CipherState. With 64-byte hashes, cipher keys are the first 32 bytes of HKDF outputs.
 */

import { HASH_BYTES, KEY_BYTES, hkdf, type CipherName, type CryptoBackend, type HashName } from '../crypto/backend.js';
import { CipherState } from './cipher-state.js';

/** A Noise SymmetricState: ck, h and the handshake's CipherState. */
export class SymmetricState {
  readonly #backend: CryptoBackend;
  readonly #cipherName: CipherName;
  readonly #hash: HashName;
  readonly #cipher: CipherState;
  #ck: Uint8Array;
  #h: Uint8Array;

  /** InitializeSymmetric(protocol_name). */
  constructor(protocolName: string, cipher: CipherName, hash: HashName, backend: CryptoBackend) {
    this.#backend = backend;
    this.#cipherName = cipher;
    this.#hash = hash;
    const name = new TextEncoder().encode(protocolName);
    const hashLength = HASH_BYTES[hash];
    if (name.length <= hashLength) {
      this.#h = new Uint8Array(hashLength);
      this.#h.set(name);
    } else {
      this.#h = backend.hash(hash, [name]);
    }
    this.#ck = Uint8Array.from(this.#h);
    this.#cipher = new CipherState(cipher, backend);
  }

  hasKey(): boolean {
    return this.#cipher.hasKey();
  }

  /** MixKey(input_key_material): ck, temp_k = HKDF(ck, ikm, 2); InitializeKey(temp_k). */
  mixKey(inputKeyMaterial: Uint8Array): void {
    const [ck, tempKey] = hkdf(this.#backend, this.#hash, this.#ck, inputKeyMaterial, 2) as [Uint8Array, Uint8Array];
    this.#ck.fill(0);
    this.#ck = ck;
    this.#cipher.initializeKey(tempKey.subarray(0, KEY_BYTES));
    tempKey.fill(0);
  }

  /** MixHash(data): h = HASH(h || data). */
  mixHash(data: Uint8Array): void {
    this.#h = this.#backend.hash(this.#hash, [this.#h, data]);
  }

  /** MixKeyAndHash(input_key_material): for psks (section 9). */
  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    const [ck, tempHash, tempKey] = hkdf(this.#backend, this.#hash, this.#ck, inputKeyMaterial, 3) as [Uint8Array, Uint8Array, Uint8Array];
    this.#ck.fill(0);
    this.#ck = ck;
    this.mixHash(tempHash);
    tempHash.fill(0);
    this.#cipher.initializeKey(tempKey.subarray(0, KEY_BYTES));
    tempKey.fill(0);
  }

  /** GetHandshakeHash(): a copy of h. */
  getHandshakeHash(): Uint8Array {
    return Uint8Array.from(this.#h);
  }

  /** EncryptAndHash(plaintext): ciphertext = EncryptWithAd(h, plaintext); MixHash(ciphertext). */
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.#cipher.encryptWithAd(this.#h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /** DecryptAndHash(ciphertext): plaintext = DecryptWithAd(h, ciphertext); MixHash(ciphertext). */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.#cipher.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Split(): two CipherStates keyed from HKDF(ck, zerolen, 2), for initiator->responder and back. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf(this.#backend, this.#hash, this.#ck, new Uint8Array(0), 2) as [Uint8Array, Uint8Array];
    const c1 = new CipherState(this.#cipherName, this.#backend, k1.subarray(0, KEY_BYTES));
    const c2 = new CipherState(this.#cipherName, this.#backend, k2.subarray(0, KEY_BYTES));
    k1.fill(0);
    k2.fill(0);
    return [c1, c2];
  }

  /** Wipes ck and h and drops the handshake cipher key. */
  wipe(): void {
    this.#ck.fill(0);
    this.#h.fill(0);
    this.#cipher.destroy();
  }
}
