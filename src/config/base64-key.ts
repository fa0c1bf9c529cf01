/**
 * Strict base64 for 32-byte keys (WireGuard's format: 44 characters ending in `=`).
 *
 * A local decoder because src/crypto/keys.ts was not written yet when config was; it decodes
 * into a fresh `Uint8Array`, never through `Buffer.from(string)`, whose small results come from
 * the shared pool (SECURITY.md #11). The lead may swap it for crypto's `decodeKey`.
 */

/** Length of a base64-encoded 32-byte key. */
export const KEY_BASE64_CHARS = 44;
export const KEY_BYTES = 32;

/** 42 free characters, then one whose low two bits are zero (43 * 6 = 256 + 2), then `=`. */
const CANONICAL_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** True when `text` is exactly one canonical base64 32-byte key. */
export function isBase64Key(text: string): boolean {
  return CANONICAL_KEY.test(text);
}

/**
 * Decodes a canonical base64 32-byte key into a new Uint8Array, or returns undefined. Never
 * throws with the input in a message: callers describe the failure without echoing it.
 */
export function decodeBase64Key(text: string): Uint8Array | undefined {
  if (text.length !== KEY_BASE64_CHARS) return undefined;
  const ascii = new Uint8Array(KEY_BASE64_CHARS);
  for (let i = 0; i < KEY_BASE64_CHARS; i++) {
    const c = text.charCodeAt(i);
    ascii[i] = c > 0x7f ? 0 : c; // 0 is not base64: non-ASCII is refused, not truncated
  }
  const out = decodeBase64KeyBytes(ascii);
  ascii.fill(0);
  return out;
}

/** Decodes key bytes given as ASCII (a file's content) without making a string of them. */
export function decodeBase64KeyBytes(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.length !== KEY_BASE64_CHARS || bytes[KEY_BASE64_CHARS - 1] !== 0x3d) return undefined;
  const out = new Uint8Array(KEY_BYTES);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < KEY_BASE64_CHARS - 1; i++) {
    const v = sextet(bytes[i] as number);
    if (v < 0) {
      out.fill(0);
      return undefined;
    }
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  // Canonical only: the 2 bits left over past byte 32 must be zero.
  const spare = acc & ((1 << bits) - 1);
  acc = 0; // eslint-disable-line no-useless-assignment -- wipes the key bits
  if (spare !== 0) {
    out.fill(0);
    return undefined;
  }
  return out;
}

/** Value of one base64 character, or -1. Arithmetic rather than a lookup keyed by the secret. */
function sextet(c: number): number {
  if (c >= 0x41 && c <= 0x5a) return c - 0x41;
  if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 26;
  if (c >= 0x30 && c <= 0x39) return c - 0x30 + 52;
  if (c === 0x2b) return 62;
  if (c === 0x2f) return 63;
  return -1;
}
