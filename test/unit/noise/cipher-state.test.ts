import { createCipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CipherName } from '../../../src/crypto/backend.js';
import { getBackend } from '../../../src/crypto/get-backend.js';
import { CipherState } from '../../../src/noise/cipher-state.js';
import { MAX_NONCE, MAX_PLAINTEXT_BYTES } from '../../../src/noise/constants.js';
import { expectCode, flipBit } from '../../helpers/noise-parties.js';

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const AD = Uint8Array.of(0xaa, 0xbb);

/** Reference ENCRYPT with the nonce layout of Noise sections 12.3 and 12.4 built by hand. */
function reference(cipher: CipherName, key: Uint8Array, n: bigint, ad: Uint8Array, plaintext: Uint8Array): Buffer {
  const nonce = Buffer.alloc(12);
  if (cipher === 'ChaChaPoly') nonce.writeBigUInt64LE(n, 4);
  else nonce.writeBigUInt64BE(n, 4);
  const c = createCipheriv(cipher === 'ChaChaPoly' ? 'chacha20-poly1305' : 'aes-256-gcm', key, nonce, { authTagLength: 16 } as never) as ReturnType<
    typeof createCipheriv
  > & {
    setAAD(ad: Uint8Array): void;
    getAuthTag(): Buffer;
  };
  c.setAAD(ad);
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([body, c.getAuthTag()]);
}

describe.each(['node', 'noble'] as const)('CipherState (%s backend)', (name) => {
  const backend = getBackend(name);

  describe.each(['ChaChaPoly', 'AESGCM'] as const)('%s', (cipher) => {
    it('lays out the 64-bit nonce as the spec says, including the high word', () => {
      const cs = new CipherState(cipher, backend, KEY);
      for (const n of [0n, 1n, 0xffff_ffffn, 0x1_0000_0000n, 0x0123_4567_89ab_cdefn, MAX_NONCE - 1n]) {
        cs.setNonce(n);
        const plaintext = new TextEncoder().encode(`n=${n}`);
        expect(Buffer.from(cs.encryptWithAd(AD, plaintext))).toEqual(reference(cipher, KEY, n, AD, plaintext));
        expect(cs.nonce).toBe(n + 1n);
      }
    });

    it('round-trips parts, counts nonces and never advances on failure', () => {
      const tx = new CipherState(cipher, backend, KEY);
      const rx = new CipherState(cipher, backend, KEY);
      const parts = [Uint8Array.of(1, 2), new Uint8Array(0), Uint8Array.of(3)];
      const c0 = tx.encryptWithAd(AD, parts);
      const c1 = tx.encryptWithAd(AD, Uint8Array.of(9));
      expect(tx.nonce).toBe(2n);
      expectCode(() => rx.decryptWithAd(AD, flipBit(c0, 0)), 'ERR_NOISE_DECRYPT');
      expectCode(() => rx.decryptWithAd(AD, flipBit(c0, c0.length - 1)), 'ERR_NOISE_DECRYPT');
      expectCode(() => rx.decryptWithAd(Uint8Array.of(0xaa), c0), 'ERR_NOISE_DECRYPT');
      expectCode(() => rx.decryptWithAd(AD, c1), 'ERR_NOISE_DECRYPT'); // out of order
      expectCode(() => rx.decryptWithAd(AD, c0.subarray(0, 15)), 'ERR_NOISE_MESSAGE_TOO_SHORT');
      expect(rx.nonce).toBe(0n);
      expect([...rx.decryptWithAd(AD, c0)]).toEqual([1, 2, 3]);
      expect([...rx.decryptWithAd(AD, c1)]).toEqual([9]);
      expect(rx.nonce).toBe(2n);
    });

    it('stops at nonce 2^64-1 (reserved) for encryption and decryption', () => {
      const tx = new CipherState(cipher, backend, KEY);
      const rx = new CipherState(cipher, backend, KEY);
      tx.setNonce(MAX_NONCE - 1n);
      rx.setNonce(MAX_NONCE - 1n);
      const last = tx.encryptWithAd(AD, Uint8Array.of(1));
      expect(tx.nonce).toBe(MAX_NONCE);
      expectCode(() => tx.encryptWithAd(AD, Uint8Array.of(2)), 'ERR_NOISE_NONCE_EXHAUSTED');
      expect([...rx.decryptWithAd(AD, last)]).toEqual([1]);
      expectCode(() => rx.decryptWithAd(AD, last), 'ERR_NOISE_NONCE_EXHAUSTED');
      expect(() => tx.setNonce(MAX_NONCE + 1n)).toThrow(RangeError);
      expect(() => tx.setNonce(-1)).toThrow(RangeError);
    });

    it('rekeys both sides to the same new key without touching the nonce', () => {
      const tx = new CipherState(cipher, backend, KEY);
      const rx = new CipherState(cipher, backend, KEY);
      const before = tx.encryptWithAd(AD, Uint8Array.of(5));
      rx.decryptWithAd(AD, before);
      tx.rekey();
      rx.rekey();
      expect(tx.nonce).toBe(1n);
      const after = tx.encryptWithAd(AD, Uint8Array.of(5));
      // Same nonce position under the old key gives different bytes: the key changed.
      const old = new CipherState(cipher, backend, KEY);
      old.setNonce(1);
      expect(Buffer.from(after)).not.toEqual(Buffer.from(old.encryptWithAd(AD, Uint8Array.of(5))));
      expect([...rx.decryptWithAd(AD, after)]).toEqual([5]);
      // Rekey = first 32 bytes of ENCRYPT(k, 2^64-1, empty, zeros).
      const expectedKey = reference(cipher, KEY, MAX_NONCE, new Uint8Array(0), new Uint8Array(32)).subarray(0, 32);
      const manual = new CipherState(cipher, backend, expectedKey);
      manual.setNonce(1);
      expect(Buffer.from(manual.encryptWithAd(AD, Uint8Array.of(5)))).toEqual(Buffer.from(after));
    });

    it('enforces the message limit and passes plaintext through without a key', () => {
      const cs = new CipherState(cipher, backend, KEY);
      expect(cs.encryptWithAd(AD, new Uint8Array(MAX_PLAINTEXT_BYTES)).length).toBe(65535);
      expectCode(() => cs.encryptWithAd(AD, new Uint8Array(MAX_PLAINTEXT_BYTES + 1)), 'ERR_NOISE_MESSAGE_TOO_LONG');
      expectCode(() => cs.decryptWithAd(AD, new Uint8Array(65536)), 'ERR_NOISE_MESSAGE_TOO_LONG');
      const empty = new CipherState(cipher, backend);
      expect(empty.hasKey()).toBe(false);
      expect([...empty.encryptWithAd(AD, [Uint8Array.of(1), Uint8Array.of(2)])]).toEqual([1, 2]);
      expect([...empty.decryptWithAd(AD, Uint8Array.of(3))]).toEqual([3]);
      expect(empty.nonce).toBe(0n);
      expectCode(() => empty.rekey(), 'ERR_NOISE_MISSING_KEY');
    });
  });
});
