/**
 * The optional native AEAD (src/crypto/native-aead.ts, src/crypto/native/aead.c): byte-identical
 * to @noble (the reference) for both ciphers, parts, prefixes and in-place opening; forgeries
 * rejected with the output wiped; and the fallback to node:crypto when the addon is missing,
 * fails to load or computes wrong bytes (loaders injected).
 */

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CipherName } from '../../../src/crypto/backend.js';
import { availableBackends, defaultBackend, getBackend, nativeAeadStatus } from '../../../src/crypto/get-backend.js';
import { loadNativeAead, type NativeAeadBinding } from '../../../src/crypto/native-aead.js';
import { createNodeBackend } from '../../../src/crypto/node-backend.js';
import { NoiseError } from '../../../src/errors.js';
import { HandshakeState } from '../../../src/noise/handshake-state.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const bytes = fc.uint8Array({ maxLength: 300 });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const CIPHERS: CipherName[] = ['ChaChaPoly', 'AESGCM'];
const noble = getBackend('noble');

/** What scripts/build-native.mjs needs: a C compiler and Node's headers with OpenSSL's. */
const HEADERS = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');
const CAN_BUILD =
  (process.platform === 'linux' || process.platform === 'darwin') &&
  fs.existsSync(path.join(HEADERS, 'node_api.h')) &&
  fs.existsSync(path.join(HEADERS, 'openssl', 'evp.h')) &&
  spawnSync(process.env.CC || 'cc', ['--version']).status === 0;

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return err instanceof NoiseError ? err.code : String(err);
  }
}

describe('native AEAD availability', () => {
  it('is built and in use where it can be built (npm ci runs scripts/build-native.mjs)', () => {
    // Not a skip: on a machine with a compiler and the headers, a missing addon is a failure.
    if (!CAN_BUILD) {
      expect(nativeAeadStatus.available).toBe(false);
      return;
    }
    expect(nativeAeadStatus, 'run `node scripts/build-native.mjs` (npm ci does)').toMatchObject({ available: true });
    expect(defaultBackend.name).toBe('native');
    expect(availableBackends()).toEqual(['node', 'native', 'noble']);
  });
});

describe.runIf(nativeAeadStatus.available)('native backend against @noble', () => {
  const native = nativeAeadStatus.available ? getBackend('native') : noble;

  it("seal (parts, prefix) and open give @noble's bytes for both ciphers", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...CIPHERS),
        key32,
        u32,
        u32,
        bytes,
        fc.array(bytes, { maxLength: 4 }),
        fc.option(fc.uint8Array({ minLength: 1, maxLength: 3 }), { nil: undefined }),
        (cipher, key, high, low, ad, parts, prefix) => {
          const a = native.createAead(cipher, key).seal(high, low, ad, parts, prefix);
          const b = noble.createAead(cipher, key).seal(high, low, ad, parts, prefix);
          expect(hex(a)).toBe(hex(b));
          const start = prefix?.length ?? 0;
          expect(hex(native.createAead(cipher, key).open(high, low, ad, b.subarray(start)))).toBe(hex(Buffer.concat(parts)));
          // In place: the plaintext is written over the ciphertext it came from.
          const copy = Uint8Array.from(b.subarray(start));
          const opened = native.createAead(cipher, key).open(high, low, ad, copy, true);
          expect(hex(opened)).toBe(hex(Buffer.concat(parts)));
          expect(opened.buffer).toBe(copy.buffer);
          expect(opened.byteOffset).toBe(copy.byteOffset);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('rejects any changed byte or nonce, wipes the in-place output, and the key still works after', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...CIPHERS),
        key32,
        u32,
        bytes,
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.nat(),
        (cipher, key, low, ad, plaintext, at) => {
          const aead = native.createAead(cipher, key);
          const sealed = aead.seal(0, low, ad, plaintext);
          const forged = Uint8Array.from(sealed);
          forged[at % forged.length]! ^= 0x01;
          expect(codeOf(() => aead.open(0, low, ad, forged, true))).toBe('ERR_NOISE_DECRYPT');
          expect(forged.subarray(0, plaintext.length).every((b) => b === 0)).toBe(true);
          expect(codeOf(() => aead.open(0, (low + 1) >>> 0, ad, sealed))).toBe('ERR_NOISE_DECRYPT');
          expect(hex(aead.open(0, low, ad, sealed))).toBe(hex(plaintext));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('a 65535-byte Noise message, an empty plaintext, and a destroyed key', () => {
    const key = new Uint8Array(32).fill(9);
    for (const cipher of CIPHERS) {
      const big = new Uint8Array(65535 - 16).map((_, i) => i & 0xff);
      const a = native.createAead(cipher, key);
      expect(hex(a.seal(1, 2, Uint8Array.of(1), [big.subarray(0, 7), big.subarray(7)]))).toBe(
        hex(noble.createAead(cipher, key).seal(1, 2, Uint8Array.of(1), big)),
      );
      expect(hex(a.seal(1, 2, new Uint8Array(0), []))).toBe(hex(noble.createAead(cipher, key).seal(1, 2, new Uint8Array(0), new Uint8Array(0))));
      a.destroy();
      expect(codeOf(() => a.seal(0, 0, new Uint8Array(0), new Uint8Array(1)))).toBe('ERR_NOISE_UNUSABLE');
      expect(codeOf(() => a.open(0, 0, new Uint8Array(0), new Uint8Array(16)))).toBe('ERR_NOISE_UNUSABLE');
    }
  });

  it('whole IKpsk2 handshakes and transport messages between a native and a @noble party', () => {
    const protocolName = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
    const initS = noble.generateKeyPair();
    const respS = noble.generateKeyPair();
    const psk = new Uint8Array(32).fill(7);
    for (const [a, b] of [
      [native, noble],
      [noble, native],
    ] as const) {
      const init = new HandshakeState({ protocolName, initiator: true, s: initS, rs: respS.publicKey, psks: [psk], backend: a });
      const resp = new HandshakeState({ protocolName, initiator: false, s: respS, psks: [psk], backend: b });
      expect(hex(resp.readMessage(init.writeMessage(Uint8Array.of(1, 2))))).toBe('0102');
      expect(hex(init.readMessage(resp.writeMessage(Uint8Array.of(3))))).toBe('03');
      const i = init.split();
      const r = resp.split();
      const record = i.send.encryptWithAd(Uint8Array.of(0), new Uint8Array(1000).fill(4));
      expect(r.receive.decryptWithAd(Uint8Array.of(0), record, true)).toEqual(new Uint8Array(1000).fill(4));
      expect(hex(i.receive.decryptWithAd(new Uint8Array(0), r.send.encryptWithAd(new Uint8Array(0), Uint8Array.of(5))))).toBe('05');
    }
  });
});

describe('fallback to node:crypto', () => {
  it("a missing addon: not available, and a backend without it is node:crypto's", () => {
    const status = loadNativeAead(() => {
      throw Object.assign(new Error("Cannot find module './twoway-aead.node'"), { code: 'MODULE_NOT_FOUND' });
    });
    expect(status).toEqual({ available: false, reason: 'not built' });
    const backend = createNodeBackend();
    expect(backend.name).toBe('node');
    const key = new Uint8Array(32).fill(1);
    expect(hex(backend.createAead('ChaChaPoly', key).seal(0, 1, Uint8Array.of(0), Uint8Array.of(1, 2, 3)))).toBe(
      hex(noble.createAead('ChaChaPoly', key).seal(0, 1, Uint8Array.of(0), Uint8Array.of(1, 2, 3))),
    );
  });

  it('an addon that fails to load (wrong ABI, missing symbol) is reported, not thrown', () => {
    const status = loadNativeAead(() => {
      throw new Error('undefined symbol: EVP_chacha20_poly1305');
    });
    expect(status).toEqual({ available: false, reason: 'failed to load: undefined symbol: EVP_chacha20_poly1305' });
  });

  it('an addon that computes wrong bytes or accepts forgeries fails its self-test', () => {
    const wrongBytes: NativeAeadBinding = {
      create: () => ({}),
      seal: (_h, _n, _ad, out, offset) => out.length - offset,
      open: () => true,
      destroy: () => {},
    };
    expect(loadNativeAead(() => wrongBytes)).toMatchObject({
      available: false,
      reason: expect.stringMatching(/^failed its self-test: ChaChaPoly: sealed bytes differ/),
    });
    if (!nativeAeadStatus.available) return;
    const real = nativeAeadStatus.binding;
    const acceptsAll: NativeAeadBinding = { ...real, open: (h, n, ad, input, out) => (real.open(h, n, ad, input, out), true) };
    expect(loadNativeAead(() => acceptsAll)).toMatchObject({ available: false, reason: 'failed its self-test: ChaChaPoly: a forged record was accepted' });
    const throwsOnCreate: NativeAeadBinding = {
      ...real,
      create: () => {
        throw new Error('cipher set-up failed');
      },
    };
    expect(loadNativeAead(() => throwsOnCreate)).toMatchObject({ available: false, reason: 'failed its self-test: cipher set-up failed' });
  });
});
