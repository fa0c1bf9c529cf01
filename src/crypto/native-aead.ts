/**
 * The optional native AEAD (src/crypto/native/aead.c, built by `npm ci` where a C compiler and
 * Node's headers exist): the same OpenSSL ciphers as node:crypto, one context per key, sealing
 * straight into the record buffer and opening in place. Loading never throws: when the addon is
 * missing, fails to load or fails its known-answer check, `loadNativeAead` says why and the node
 * backend keeps node:crypto's AEAD.
 */

import { createCipheriv } from 'node:crypto';
import { createRequire } from 'node:module';
import { NoiseError } from '../errors.js';
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES, allocOutput, partsLength, writeNoiseNonce, type Aead, type CipherName } from './backend.js';
import { takeRecordBuffer } from './record-pool.js';

/** What aead.c exports (the handle is an opaque external). */
export interface NativeAeadBinding {
  create(algorithm: 0 | 1, key: Uint8Array): object;
  /** Writes ciphertext || tag of the parts at `offset` of `out`; returns the end offset. */
  seal(handle: object, nonce: Uint8Array, ad: Uint8Array, out: Uint8Array, offset: number, parts: readonly Uint8Array[]): number;
  /** Decrypts `input` (ciphertext || tag) into `out` (may be `input`); false (and `out` wiped) on a bad tag. */
  open(handle: object, nonce: Uint8Array, ad: Uint8Array, input: Uint8Array, out: Uint8Array): boolean;
  destroy(handle: object): void;
}

/** Returns the binding or throws; injected by tests to stand for a missing or broken addon. */
export type NativeAeadLoader = () => NativeAeadBinding;

export type NativeAeadStatus = { readonly available: true; readonly binding: NativeAeadBinding } | { readonly available: false; readonly reason: string };

/** Where scripts/build-native.mjs puts the addon, seen from dist/crypto/ (the daemon) and from src/crypto/ (vitest). */
const ADDON_PATHS = ['./twoway-aead.node', '../../dist/crypto/twoway-aead.node'];

/** Requires the built addon from the first path that exists. */
export const defaultNativeAeadLoader: NativeAeadLoader = () => {
  const require = createRequire(import.meta.url);
  let firstError: unknown;
  for (const path of ADDON_PATHS) {
    try {
      return require(path) as NativeAeadBinding;
    } catch (err) {
      firstError ??= err;
    }
  }
  throw firstError;
};

const NO_PARTS: readonly Uint8Array[] = [];

/** One key of the native AEAD; the same contract and bytes as the node and noble AEADs. */
export class NativeAead implements Aead {
  readonly #binding: NativeAeadBinding;
  readonly #cipher: CipherName;
  readonly #nonce = new Uint8Array(NONCE_BYTES);
  readonly #view = new DataView(this.#nonce.buffer);
  #handle: object | undefined;

  constructor(binding: NativeAeadBinding, cipher: CipherName, key: Uint8Array) {
    if (key.length !== KEY_BYTES) throw new RangeError(`cipher key: expected ${KEY_BYTES} bytes, got ${key.length}`);
    this.#binding = binding;
    this.#cipher = cipher;
    // From here the key lives in the addon only (its OpenSSL contexts; wiped by destroy()).
    this.#handle = binding.create(cipher === 'ChaChaPoly' ? 0 : 1, key);
  }

  #nonceFor(high: number, low: number): Uint8Array {
    writeNoiseNonce(this.#view, this.#cipher, high, low);
    return this.#nonce;
  }

  #live(): object {
    if (this.#handle === undefined) throw new NoiseError('ERR_NOISE_UNUSABLE', 'cipher key was destroyed');
    return this.#handle;
  }

  seal(high: number, low: number, ad: Uint8Array, plaintext: Uint8Array | readonly Uint8Array[], prefix?: Uint8Array): Uint8Array {
    const handle = this.#live();
    const start = prefix?.length ?? 0;
    const out = takeRecordBuffer(start + partsLength(plaintext) + TAG_BYTES);
    if (prefix !== undefined) out.set(prefix, 0);
    const parts = plaintext instanceof Uint8Array ? [plaintext] : plaintext.length === 0 ? NO_PARTS : plaintext;
    this.#binding.seal(handle, this.#nonceFor(high, low), ad, out, start, parts);
    return out;
  }

  open(high: number, low: number, ad: Uint8Array, ciphertext: Uint8Array, inPlace = false): Uint8Array {
    const handle = this.#live();
    if (ciphertext.length < TAG_BYTES) throw new NoiseError('ERR_NOISE_DECRYPT', 'ciphertext shorter than the tag');
    const length = ciphertext.length - TAG_BYTES;
    const out = inPlace ? ciphertext.subarray(0, length) : allocOutput(length);
    if (!this.#binding.open(handle, this.#nonceFor(high, low), ad, ciphertext, out)) {
      throw new NoiseError('ERR_NOISE_DECRYPT', 'authentication tag mismatch');
    }
    return out;
  }

  destroy(): void {
    if (this.#handle !== undefined) this.#binding.destroy(this.#handle);
    this.#handle = undefined;
  }
}

/**
 * A known-answer check against node:crypto for both ciphers, parts and in-place opening: an addon
 * built against headers that do not match the running OpenSSL must not carry a byte.
 */
function selfTest(binding: NativeAeadBinding): void {
  const key = Uint8Array.from({ length: KEY_BYTES }, (_, i) => i + 1);
  const ad = Uint8Array.of(1, 2, 3);
  const parts = [Uint8Array.of(0), new Uint8Array(300).fill(0x5a), Uint8Array.of(7, 8)];
  const plain = Buffer.concat(parts);
  for (const [cipher, algorithm] of [
    ['ChaChaPoly', 'chacha20-poly1305'],
    ['AESGCM', 'aes-256-gcm'],
  ] as const) {
    const aead = new NativeAead(binding, cipher, key);
    const sealed = aead.seal(0x01020304, 0x05060708, ad, parts, Uint8Array.of(0xee));
    const nonce = new Uint8Array(NONCE_BYTES);
    writeNoiseNonce(new DataView(nonce.buffer), cipher, 0x01020304, 0x05060708);
    const reference = createCipheriv(algorithm as 'aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    reference.setAAD(ad);
    const expected = Buffer.concat([Uint8Array.of(0xee), reference.update(plain), reference.final(), reference.getAuthTag()]);
    if (!expected.equals(sealed)) throw new Error(`${cipher}: sealed bytes differ from node:crypto`);
    const opened = aead.open(0x01020304, 0x05060708, ad, sealed.subarray(1), true);
    if (!Buffer.from(opened).equals(plain)) throw new Error(`${cipher}: opened bytes differ`);
    let rejected = false;
    try {
      aead.open(
        0x01020304,
        0x05060708,
        ad,
        expected.subarray(1).map((b, i) => (i === 3 ? b ^ 1 : b)),
      );
    } catch {
      rejected = true;
    }
    aead.destroy();
    if (!rejected) throw new Error(`${cipher}: a forged record was accepted`);
  }
}

/** Loads the addon and checks it; never throws. */
export function loadNativeAead(loader: NativeAeadLoader = defaultNativeAeadLoader): NativeAeadStatus {
  let binding: NativeAeadBinding;
  try {
    binding = loader();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    return { available: false, reason: code === 'MODULE_NOT_FOUND' ? 'not built' : `failed to load: ${(err as Error)?.message ?? String(err)}` };
  }
  try {
    selfTest(binding);
  } catch (err) {
    return { available: false, reason: `failed its self-test: ${(err as Error)?.message ?? String(err)}` };
  }
  return { available: true, binding };
}
