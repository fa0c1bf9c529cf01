/**
 * Differential test: the node:crypto backend (and the native one, where the addon is built) and
 * @noble must give identical bytes for the same inputs (DH, both AEADs, the four hashes, HMAC)
 * and for whole handshakes with fixed ephemerals.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CipherName, CryptoBackend, HashName, KeyPair } from '../../../src/crypto/backend.js';
import { hkdf } from '../../../src/crypto/backend.js';
import { availableBackends, getBackend } from '../../../src/crypto/get-backend.js';
import { NoiseError } from '../../../src/errors.js';
import { HandshakeState } from '../../../src/noise/handshake-state.js';
import { PATTERNS } from '../../../src/noise/patterns.js';

const noble = getBackend('noble');
/** Every backend this process has, each checked against @noble. */
const COMPARED = availableBackends().filter((name) => name !== 'noble');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const bytes = fc.uint8Array({ maxLength: 300 });
const HASHES: HashName[] = ['BLAKE2s', 'BLAKE2b', 'SHA256', 'SHA512'];
const CIPHERS: CipherName[] = ['ChaChaPoly', 'AESGCM'];
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });

/** DH on a backend, as hex or the error code. */
function dh(backend: CryptoBackend, privateKey: Uint8Array, publicKey: Uint8Array): string {
  try {
    const pair: KeyPair = { privateKey, publicKey: backend.publicKeyFromPrivate(privateKey) };
    return hex(backend.dh(backend.importDhKey(pair, false), backend.importPublicKey(publicKey, false)));
  } catch (err) {
    if (err instanceof NoiseError) return err.code;
    throw err;
  }
}

for (const name of COMPARED) {
  const node = getBackend(name);

  describe(`${name} and noble backends agree`, () => {
    it('X25519 public keys and DH (random and low-order points)', () => {
      const lowOrder = [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))];
      fc.assert(
        fc.property(key32, fc.oneof(key32, fc.constantFrom(...lowOrder)), (privateKey, publicKey) => {
          expect(hex(node.publicKeyFromPrivate(privateKey))).toBe(hex(noble.publicKeyFromPrivate(privateKey)));
          expect(dh(node, privateKey, publicKey)).toBe(dh(noble, privateKey, publicKey));
        }),
        { numRuns: 40 },
      );
      for (const point of lowOrder) expect(dh(node, new Uint8Array(32).fill(5), point)).toBe('ERR_NOISE_INVALID_DH');
    });

    it('AEAD seal and open for both ciphers', () => {
      fc.assert(
        fc.property(fc.constantFrom(...CIPHERS), key32, u32, u32, bytes, fc.array(bytes, { maxLength: 4 }), (cipher, key, high, low, ad, parts) => {
          const a = node.createAead(cipher, key).seal(high, low, ad, parts);
          const b = noble.createAead(cipher, key).seal(high, low, ad, parts);
          expect(hex(a)).toBe(hex(b));
          expect(hex(noble.createAead(cipher, key).open(high, low, ad, a))).toBe(hex(Buffer.concat(parts)));
          expect(hex(node.createAead(cipher, key).open(high, low, ad, b))).toBe(hex(Buffer.concat(parts)));
        }),
        { numRuns: 100 },
      );
    });

    it('hashes, HMAC and HKDF', () => {
      fc.assert(
        fc.property(fc.constantFrom(...HASHES), fc.uint8Array({ maxLength: 200 }), fc.array(bytes, { maxLength: 3 }), (hash, key, parts) => {
          expect(hex(node.hash(hash, parts))).toBe(hex(noble.hash(hash, parts)));
          expect(hex(node.hmac(hash, key, parts))).toBe(hex(noble.hmac(hash, key, parts)));
          const ikm = parts[0] ?? new Uint8Array(0);
          expect(hkdf(node, hash, key, ikm, 3).map(hex)).toEqual(hkdf(noble, hash, key, ikm, 3).map(hex));
        }),
        { numRuns: 100 },
      );
    });

    it('whole handshakes with fixed ephemerals, any pattern and suite', () => {
      const names = [...PATTERNS.keys()];
      fc.assert(
        fc.property(
          fc.constantFrom(...names),
          fc.constantFrom(...CIPHERS),
          fc.constantFrom(...HASHES),
          fc.boolean(),
          fc.array(key32, { minLength: 5, maxLength: 5 }),
          bytes,
          (patternName, cipher, hash, psk0, [is, ie, rsPriv, re, psk], payload) => {
            const pattern = PATTERNS.get(patternName)!;
            const protocolName = `Noise_${patternName}${psk0 ? 'psk0' : ''}_25519_${cipher}_${hash}`;
            const run = (backend: CryptoBackend): string[] => {
              const pair = (k: Uint8Array): KeyPair => ({ privateKey: k, publicKey: backend.publicKeyFromPrivate(k) });
              const initS = pair(is!);
              const respS = pair(rsPriv!);
              const psks = psk0 ? [psk!] : [];
              // Remote statics are given only where a pre-message says they are known in advance.
              const initRs = pattern.responderPreMessage.includes('s') ? { rs: respS.publicKey } : {};
              const respRs = pattern.initiatorPreMessage.includes('s') ? { rs: initS.publicKey } : {};
              const init = new HandshakeState({ protocolName, initiator: true, s: initS, e: pair(ie!), ...initRs, psks, backend });
              const resp = new HandshakeState({ protocolName, initiator: false, s: respS, e: pair(re!), ...respRs, psks, backend });
              const out: string[] = [];
              for (let i = 0; i < pattern.messages.length; i++) {
                const [w, r] = i % 2 === 0 ? [init, resp] : [resp, init];
                const message = w.writeMessage(payload);
                expect(hex(r.readMessage(message))).toBe(hex(payload));
                out.push(hex(message));
              }
              out.push(hex(init.handshakeHash));
              out.push(hex(init.split().send.encryptWithAd(new Uint8Array(0), payload)));
              return out;
            };
            expect(run(node)).toEqual(run(noble));
          },
        ),
        { numRuns: 40 },
      );
    });
  });

  describe(`${name}: seal with a prefix (record header in front of the ciphertext)`, () => {
    it('node and noble agree, and the prefix is followed by exactly the plain seal', () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...CIPHERS),
          key32,
          u32,
          u32,
          bytes,
          fc.array(bytes, { maxLength: 4 }),
          fc.uint8Array({ minLength: 1, maxLength: 3 }),
          (cipher, key, high, low, ad, parts, prefix) => {
            const a = node.createAead(cipher, key).seal(high, low, ad, parts, prefix);
            const b = noble.createAead(cipher, key).seal(high, low, ad, parts, prefix);
            expect(hex(a)).toBe(hex(b));
            const plain = node.createAead(cipher, key).seal(high, low, ad, parts);
            expect(hex(a)).toBe(hex(prefix) + hex(plain));
          },
        ),
        { numRuns: 200 },
      );
    });
  });
}
