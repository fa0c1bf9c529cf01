import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { HashName } from '../../../src/crypto/backend.js';
import { createNodeBackend } from '../../../src/crypto/node-backend.js';
import { nobleBackend } from '../../../src/crypto/noble-backend.js';

const OPENSSL: Record<HashName, string> = { BLAKE2s: 'blake2s256', BLAKE2b: 'blake2b512', SHA256: 'sha256', SHA512: 'sha512' };
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('node backend fast paths', () => {
  it('one-shot hash and HMAC match OpenSSL streams on both sides of the one-shot size limit', () => {
    const node = createNodeBackend();
    for (const name of Object.keys(OPENSSL) as HashName[]) {
      for (const size of [0, 1, 63, 64, 65, 1023, 1024, 1025, 5000]) {
        const data = Uint8Array.from({ length: size }, (_, i) => (i * 7 + size) & 0xff);
        const parts = [data.subarray(0, size >> 1), data.subarray(size >> 1)];
        expect(hex(node.hash(name, parts))).toBe(createHash(OPENSSL[name]).update(data).digest('hex'));
        for (const keyLength of [0, 32, 64, 128, 129]) {
          const key = new Uint8Array(keyLength).fill(0xa5);
          expect(hex(node.hmac(name, key, parts))).toBe(createHmac(OPENSSL[name], key).update(data).digest('hex'));
        }
      }
    }
  });

  it('memoises static-static DH of cached keys, returning a fresh copy each time', () => {
    const node = createNodeBackend();
    const a = node.generateKeyPair();
    const b = nobleBackend.generateKeyPair();
    const local = node.importDhKey(a, true);
    const remote = node.importPublicKey(b.publicKey, true);
    const first = node.dh(local, remote);
    const expected = hex(first);
    expect(expected).toBe(hex(nobleBackend.dh(nobleBackend.importDhKey(b, false), nobleBackend.importPublicKey(a.publicKey, false))));
    first.fill(0); // what the engine does with a DH output
    const second = node.dh(local, remote);
    expect(hex(second)).toBe(expected);
    expect(second).not.toBe(first);
    second.fill(0);
    expect(hex(node.dh(node.importDhKey(a, true), node.importPublicKey(b.publicKey, true)))).toBe(expected);
    // Uncached handles are computed afresh and give the same answer.
    expect(hex(node.dh(node.importDhKey(a, false), node.importPublicKey(b.publicKey, false)))).toBe(expected);
  });
});
