import { describe, expect, it } from 'vitest';
import { getBackend } from '../../../src/crypto/get-backend.js';
import { constantTimeEqual, decodeKey, encodeKey, fingerprint, generateKeyPair, publicKeyFromPrivate, wipe } from '../../../src/crypto/keys.js';
import { InputError } from '../../../src/errors.js';

// RFC 7748 section 6.1 (Alice's key pair).
const ALICE_PRIVATE = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
const ALICE_PUBLIC = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';

function codeOf(fn: () => unknown): { code?: string; message: string; error: unknown } {
  try {
    fn();
  } catch (error) {
    return { code: (error as { code?: string }).code, message: (error as Error).message, error };
  }
  throw new Error('expected a throw');
}

describe('keys', () => {
  it('generates clamped key pairs whose public key matches X25519 of the private key', () => {
    for (let i = 0; i < 5; i++) {
      const { privateKey, publicKey } = generateKeyPair();
      expect(privateKey.length).toBe(32);
      expect(privateKey[0]! & 7).toBe(0);
      expect(privateKey[31]! & 0x80).toBe(0);
      expect(privateKey[31]! & 0x40).toBe(0x40);
      expect(Buffer.from(publicKeyFromPrivate(privateKey))).toEqual(Buffer.from(publicKey));
      expect(Buffer.from(getBackend('noble').publicKeyFromPrivate(privateKey))).toEqual(Buffer.from(publicKey));
      // Not a slice of Buffer's shared pool.
      expect(privateKey.byteOffset).toBe(0);
      expect(privateKey.buffer.byteLength).toBe(32);
    }
  });

  it('derives RFC 7748 public keys with both backends', () => {
    const privateKey = Uint8Array.from(Buffer.from(ALICE_PRIVATE, 'hex'));
    expect(Buffer.from(publicKeyFromPrivate(privateKey)).toString('hex')).toBe(ALICE_PUBLIC);
    expect(Buffer.from(getBackend('noble').publicKeyFromPrivate(privateKey)).toString('hex')).toBe(ALICE_PUBLIC);
    expect(getBackend('noble').generateKeyPair().privateKey[31]! & 0xc0).toBe(0x40);
  });

  it('round-trips the WireGuard base64 format', () => {
    const { publicKey, privateKey } = generateKeyPair();
    for (const key of [publicKey, privateKey, new Uint8Array(32), new Uint8Array(32).fill(255)]) {
      const text = encodeKey(key);
      expect(text).toHaveLength(44);
      expect(text.endsWith('=')).toBe(true);
      expect(Buffer.from(decodeKey(text, 'key'))).toEqual(Buffer.from(key));
    }
    expect(encodeKey(Uint8Array.from(Buffer.from(ALICE_PUBLIC, 'hex')))).toBe('hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=');
  });

  it('rejects bad key text naming the key and never echoing the input', () => {
    const secret = encodeKey(generateKeyPair().privateKey);
    const bad = [
      secret.slice(0, 43), // too short
      `${secret}A`, // too long
      `${secret.slice(0, 42)}B=`, // non-canonical last character (low bits set)
      `${secret.slice(0, 10)}-${secret.slice(11)}`, // base64url alphabet
      `${secret.slice(0, 10)} ${secret.slice(11)}`,
      secret.slice(0, 43).padEnd(44, '!'),
      '',
    ];
    for (const text of bad) {
      const { code, message, error } = codeOf(() => decodeKey(text, 'private key in /etc/twoway/key'));
      expect(error).toBeInstanceOf(InputError);
      expect(code).toBe('ERR_INVALID_KEY');
      expect(message).toContain('private key in /etc/twoway/key');
      if (text.length > 8) expect(message).not.toContain(text.slice(2, 12));
    }
    expect(codeOf(() => encodeKey(new Uint8Array(31))).code).toBe('ERR_INVALID_KEY');
    expect(codeOf(() => publicKeyFromPrivate(new Uint8Array(16))).code).toBe('ERR_INVALID_KEY');
  });

  it('fingerprints a public key as its base64 (as wg show prints)', () => {
    const { publicKey } = generateKeyPair();
    expect(fingerprint(publicKey)).toBe(Buffer.from(publicKey).toString('base64'));
  });

  it('compares in constant time and treats different lengths as unequal', () => {
    const a = Uint8Array.of(1, 2, 3);
    expect(constantTimeEqual(a, Uint8Array.of(1, 2, 3))).toBe(true);
    expect(constantTimeEqual(a, Uint8Array.of(1, 2, 4))).toBe(false);
    expect(constantTimeEqual(a, Uint8Array.of(1, 2))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });

  it('wipes buffers', () => {
    const a = Uint8Array.of(1, 2);
    const b = new Uint8Array(4).fill(9);
    wipe(a, undefined, b);
    expect([...a, ...b].every((x) => x === 0)).toBe(true);
  });
});
