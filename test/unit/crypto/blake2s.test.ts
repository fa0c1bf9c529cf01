import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hkdfFromHmac } from '../../../src/crypto/backend.js';
import { blake2s, blake2sFinish, blake2sInit } from '../../../src/crypto/blake2s.js';
import { BLAKE2S_JS_MAX_BYTES, blake2sParts, hkdfBlake2s, hmacBlake2s } from '../../../src/crypto/hmac-blake2s.js';
import { nobleBackend } from '../../../src/crypto/noble-backend.js';
import { createNodeBackend } from '../../../src/crypto/node-backend.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (length: number, seed: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * 31 + seed * 7 + 1) & 0xff);
const openssl = (data: Uint8Array): string => createHash('blake2s256').update(data).digest('hex');

describe('JavaScript BLAKE2s', () => {
  it('matches the RFC 7693 appendix B value for "abc"', () => {
    expect(hex(blake2s(new TextEncoder().encode('abc')))).toBe('508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
  });

  it('matches OpenSSL for every length up to three blocks and at block edges beyond', () => {
    const lengths = [...Array.from({ length: 200 }, (_, i) => i), 255, 256, 257, 1023, 1024];
    for (const length of lengths) {
      const data = bytes(length, length);
      expect(hex(blake2s(data)), `length ${length}`).toBe(openssl(data));
      // Every message word position must matter (a wrong schedule row shows up here).
      if (length === 64) {
        for (let i = 0; i < 64; i += 4) {
          const flipped = Uint8Array.from(data);
          flipped[i] ^= 0x80;
          expect(hex(blake2s(flipped)), `byte ${i}`).toBe(openssl(flipped));
        }
      }
    }
  });

  it('hashes parts as their concatenation, also from a subarray view', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 150 }), { maxLength: 6 }), (parts) => {
        const whole = Buffer.concat(parts);
        if (whole.length > BLAKE2S_JS_MAX_BYTES) return;
        expect(hex(blake2sParts(parts))).toBe(openssl(whole));
        const backing = new Uint8Array(whole.length + 10);
        backing.set(whole, 5);
        expect(hex(blake2s(backing.subarray(5, 5 + whole.length)))).toBe(openssl(whole));
      }),
      { numRuns: 200 },
    );
  });

  it('refuses to finish a message with no final block after a compressed prefix', () => {
    const h = new Int32Array(8);
    blake2sInit(h);
    expect(() => blake2sFinish(h, 64, new Uint8Array(0), 0, 0, new Uint8Array(32), 0)).toThrow(RangeError);
  });
});

describe('HMAC-BLAKE2s and HKDF', () => {
  it('HMAC matches OpenSSL for keys up to one block and messages across block edges', () => {
    for (const keyLength of [0, 1, 31, 32, 33, 63, 64]) {
      const key = bytes(keyLength, 99);
      for (const length of [0, 1, 32, 33, 63, 64, 65, 127, 128, 129, 500]) {
        const data = bytes(length, keyLength);
        const parts = [data.subarray(0, length >> 2), data.subarray(length >> 2)];
        expect(hex(hmacBlake2s(key, parts)), `key ${keyLength}, data ${length}`).toBe(createHmac('blake2s256', key).update(data).digest('hex'));
      }
    }
  });

  it('HKDF with reused pad states equals the step-by-step HMAC definition', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 200 }),
        fc.constantFrom(2 as const, 3 as const),
        (ck, ikm, outputs) => {
          const fast = hkdfBlake2s(ck, ikm, outputs);
          const reference = hkdfFromHmac(nobleBackend, 'BLAKE2s', ck, ikm, outputs);
          expect(fast.map(hex)).toEqual(reference.map(hex));
          expect(fast.every((out) => out.length === 32 && out.byteOffset === 0 && out.buffer.byteLength === 32)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('the node backend takes the JavaScript path for small inputs and OpenSSL for large ones, with equal results', () => {
    const node = createNodeBackend();
    const ck = bytes(32, 5);
    for (const length of [0, 32, BLAKE2S_JS_MAX_BYTES, BLAKE2S_JS_MAX_BYTES + 1, 4000]) {
      const ikm = bytes(length, 3);
      for (const outputs of [2, 3] as const) {
        expect(node.hkdf!('BLAKE2s', ck, ikm, outputs).map(hex)).toEqual(hkdfFromHmac(nobleBackend, 'BLAKE2s', ck, ikm, outputs).map(hex));
      }
    }
    // A chaining key longer than a block (not a Noise case, but part of the contract).
    const longKey = bytes(65, 1);
    expect(node.hkdf!('BLAKE2s', longKey, ck, 2).map(hex)).toEqual(hkdfFromHmac(nobleBackend, 'BLAKE2s', longKey, ck, 2).map(hex));
    // Other hashes go through the HMAC definition.
    expect(node.hkdf!('SHA256', ck, ck, 3).map(hex)).toEqual(hkdfFromHmac(nobleBackend, 'SHA256', ck, ck, 3).map(hex));
  });
});
