/**
 * BLAKE2s hashing of parts, HMAC-BLAKE2s (RFC 2104) and Noise's HKDF (rev 34, section 4.3) on the
 * JavaScript BLAKE2s of `blake2s.ts`, for inputs up to BLAKE2S_JS_MAX_BYTES.
 *
 * HKDF computes its two or three outputs with one temp_key. Its padded-key blocks (key ^ ipad,
 * key ^ opad) are compressed once and the two chaining values reused for every output: 10
 * compressions for HKDF(.., 2) instead of 12, and no per-call setup at all.
 *
 * Every scratch buffer and chaining value here may hold key material; each is wiped before the
 * function that filled it returns.
 */

import { BLAKE2S_BLOCK_BYTES, BLAKE2S_BYTES, blake2sCompress, blake2sFinish, blake2sInit } from './blake2s.js';

/** Largest total input (all parts) taken by this path; callers send larger ones to OpenSSL. */
export const BLAKE2S_JS_MAX_BYTES = 1024;

const IPAD = 0x36;
const OPAD = 0x5c;

/** A padded key block followed by a message. */
const scratch = new Uint8Array(BLAKE2S_BLOCK_BYTES + BLAKE2S_JS_MAX_BYTES);
/** The inner digest of an HMAC. */
const innerDigest = new Uint8Array(BLAKE2S_BYTES);
/** HKDF's temp_key and the chaining values after its padded-key blocks. */
const tempKey = new Uint8Array(BLAKE2S_BYTES);
const tempInner = new Int32Array(8);
const tempOuter = new Int32Array(8);
/** The working chaining value of the hash in progress. */
const work = new Int32Array(8);

/** Copies parts to scratch[offset...]; returns the end offset. */
function gather(parts: readonly Uint8Array[], offset: number): number {
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p];
    if (part.length > 32) {
      scratch.set(part, offset);
      offset += part.length;
    } else {
      // A loop beats the set() call for the 1- and 32-byte parts a handshake hashes.
      for (let i = 0; i < part.length; i++) scratch[offset++] = part[i];
    }
  }
  return offset;
}

/** Writes (key padded with zeros to a block) XOR pad to scratch[0, 64). */
function padKey(key: Uint8Array, pad: number): void {
  for (let i = 0; i < key.length; i++) scratch[i] = key[i] ^ pad;
  scratch.fill(pad, key.length, BLAKE2S_BLOCK_BYTES);
}

/** BLAKE2s-256 of the concatenated parts (total at most BLAKE2S_JS_MAX_BYTES). */
export function blake2sParts(parts: readonly Uint8Array[]): Uint8Array {
  const end = gather(parts, 0);
  const out = new Uint8Array(BLAKE2S_BYTES);
  blake2sInit(work);
  blake2sFinish(work, 0, scratch, 0, end, out, 0);
  scratch.fill(0, 0, end);
  return out;
}

/** HMAC-BLAKE2s(key, parts) into out[outOffset, +32); key at most 64 bytes. */
function hmacInto(key: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array, outOffset: number): void {
  padKey(key, IPAD);
  const end = gather(parts, BLAKE2S_BLOCK_BYTES);
  blake2sInit(work);
  blake2sFinish(work, 0, scratch, 0, end, innerDigest, 0);
  padKey(key, OPAD);
  scratch.set(innerDigest, BLAKE2S_BLOCK_BYTES);
  blake2sInit(work);
  blake2sFinish(work, 0, scratch, 0, BLAKE2S_BLOCK_BYTES + BLAKE2S_BYTES, out, outOffset);
  scratch.fill(0, 0, Math.max(end, BLAKE2S_BLOCK_BYTES + BLAKE2S_BYTES));
  innerDigest.fill(0);
}

/** HMAC-BLAKE2s(key, parts): key at most 64 bytes, parts at most BLAKE2S_JS_MAX_BYTES in total. */
export function hmacBlake2s(key: Uint8Array, parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(BLAKE2S_BYTES);
  hmacInto(key, parts, out, 0);
  return out;
}

/** Chaining value after one padded-key block (non-final, 64 bytes counted). */
function padState(key: Uint8Array, pad: number, state: Int32Array): void {
  padKey(key, pad);
  blake2sInit(state);
  blake2sCompress(state, scratch, 0, BLAKE2S_BLOCK_BYTES, false);
}

/** HMAC(temp_key, previous || counter byte) from the saved pad states (previous: output i-1). */
function hkdfOutput(previous: Uint8Array | undefined, counterByte: number): Uint8Array {
  let length = 0;
  if (previous !== undefined) length = gather([previous], 0);
  scratch[length] = counterByte;
  length += 1;
  work.set(tempInner);
  blake2sFinish(work, BLAKE2S_BLOCK_BYTES, scratch, 0, length, innerDigest, 0);
  scratch.fill(0, 0, length);
  const out = new Uint8Array(BLAKE2S_BYTES);
  work.set(tempOuter);
  blake2sFinish(work, BLAKE2S_BLOCK_BYTES, innerDigest, 0, BLAKE2S_BYTES, out, 0);
  innerDigest.fill(0);
  return out;
}

/**
 * HKDF(chaining_key, input_key_material, num_outputs) with HMAC-BLAKE2s, each output a fresh
 * array. chainingKey at most 64 bytes, inputKeyMaterial at most BLAKE2S_JS_MAX_BYTES.
 */
export function hkdfBlake2s(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: 2 | 3): Uint8Array[] {
  hmacInto(chainingKey, [inputKeyMaterial], tempKey, 0);
  padState(tempKey, IPAD, tempInner);
  padState(tempKey, OPAD, tempOuter);
  tempKey.fill(0);
  scratch.fill(0, 0, BLAKE2S_BLOCK_BYTES);
  const result = [hkdfOutput(undefined, 1)];
  for (let i = 2; i <= outputs; i++) result.push(hkdfOutput(result[i - 2], i));
  tempInner.fill(0);
  tempOuter.fill(0);
  return result;
}
