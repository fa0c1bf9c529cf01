#!/usr/bin/env node
/**
 * Crypto benchmark (not a test): per backend, complete Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s
 * handshakes per second (initiator and responder in this process; static keys known in advance so
 * their key objects are cached) and transport encrypt/decrypt throughput of payload bytes at
 * 1 KiB, 16 KiB and the largest payload that fits one 65535-byte Noise message.
 *
 * Imports the compiled output: run `npx tsc -p tsconfig.json` first.
 * Usage: node bench/crypto.mjs [--ms=1500] [--backend=node|native|noble] [--runs=1]
 * (default: every backend this process has; 'native' where scripts/build-native.mjs built the addon)
 * With --runs=N every figure is measured N times and the median is printed:
 * on a shared machine single runs vary by 30% or more; note the load (`uptime`) with the figures.
 */

import { createCipheriv, createPublicKey, createSecretKey, diffieHellman, generateKeyPairSync } from 'node:crypto';
import { availableBackends, getBackend } from '../dist/crypto/get-backend.js';
import { CipherState } from '../dist/noise/cipher-state.js';
import { MAX_PLAINTEXT_BYTES } from '../dist/noise/constants.js';
import { HandshakeState } from '../dist/noise/handshake-state.js';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const MEASURE_MS = Number(args.ms ?? 1500);
const BACKENDS = args.backend ? [args.backend] : availableBackends();
const RUNS = Math.max(1, Math.min(25, Number(args.runs ?? 1)));
const PROTOCOL = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
const SIZES = [
  ['1 KiB', 1024],
  ['16 KiB', 16 * 1024],
  ['64 KiB max', MAX_PLAINTEXT_BYTES],
];
/** Operations between clock reads, so the clock does not dominate small operations. */
const BATCH = 8;
/** Hard cap on iterations of one measurement, besides its time bound. */
const MAX_ITERATIONS = 10_000_000;

/** Median operations per second of RUNS measurements of `op`. */
function measure(op, ms = MEASURE_MS) {
  const results = [];
  for (let run = 0; run < RUNS; run++) results.push(measureOnce(op, ms));
  results.sort((a, b) => a - b);
  const median = results[Math.floor(results.length / 2)];
  return median;
}

/** Runs `op` repeatedly for about `ms` (after a short warm-up); returns operations per second. */
function measureOnce(op, ms) {
  const warmUntil = performance.now() + Math.min(200, ms / 5);
  while (performance.now() < warmUntil) op();
  let count = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms && count < MAX_ITERATIONS) {
    for (let i = 0; i < BATCH; i++) op();
    count += BATCH;
    elapsed = performance.now() - start;
  }
  return (count * 1000) / elapsed;
}

function benchHandshake(backend) {
  const client = backend.generateKeyPair();
  const server = backend.generateKeyPair();
  const psk = new Uint8Array(32).fill(1);
  const prologue = new TextEncoder().encode('twoway bench');
  const payload = new Uint8Array(14);
  return measure(() => {
    const initiator = new HandshakeState({ protocolName: PROTOCOL, initiator: true, prologue, s: client, rs: server.publicKey, psks: [psk], backend });
    const responder = new HandshakeState({ protocolName: PROTOCOL, initiator: false, prologue, s: server, backend });
    responder.readMessage(initiator.writeMessage(payload));
    responder.setPsks([psk]);
    initiator.readMessage(responder.writeMessage(new Uint8Array(0)));
    initiator.split();
    responder.split();
  });
}

function benchTransport(backend, size) {
  const key = new Uint8Array(32).fill(3);
  const ad = Uint8Array.of(1);
  const plaintext = new Uint8Array(size).fill(0x5a);
  const sender = new CipherState('ChaChaPoly', backend, key);
  const encryptOps = measure(() => sender.encryptWithAd(ad, plaintext));
  const receiver = new CipherState('ChaChaPoly', backend, key);
  const record = new CipherState('ChaChaPoly', backend, key).encryptWithAd(ad, plaintext);
  // The same record is opened at nonce 0 each time; resetting the counter is the only extra work.
  const decryptOps = measure(() => {
    receiver.setNonce(0);
    receiver.decryptWithAd(ad, record);
  });
  return { encrypt: (encryptOps * size) / 1e6, decrypt: (decryptOps * size) / 1e6 };
}

/**
 * Raw node:crypto figures on this machine right now, to judge the engine's overhead against, and
 * the X25519 floor of one IKpsk2 handshake pair with this backend: 6 DH (es, ss, ee, se on each
 * side, ss memoised per peer) + 2 ephemerals (key generation + public key as X25519(e, 9)) + 2
 * imports of the peer's ephemeral public key (JWK).
 */
function benchReference() {
  const a = generateKeyPairSync('x25519');
  const b = generateKeyPairSync('x25519');
  const dhPerSecond = measure(() => diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey }), MEASURE_MS / 2);
  const basePoint = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from([9, ...new Uint8Array(31)]).toString('base64url') }, format: 'jwk' });
  const ephemeralPerSecond = measure(() => diffieHellman({ privateKey: generateKeyPairSync('x25519').privateKey, publicKey: basePoint }), MEASURE_MS / 2);
  const x = Buffer.from(diffieHellman({ privateKey: b.privateKey, publicKey: basePoint })).toString('base64url');
  const importPerSecond = measure(() => createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' }), MEASURE_MS / 2);
  const key = createSecretKey(new Uint8Array(32).fill(3));
  const nonce = new Uint8Array(12);
  const plaintext = new Uint8Array(16 * 1024).fill(0x5a);
  const aeadPerSecond = measure(() => {
    const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    cipher.update(plaintext);
    cipher.final();
    cipher.getAuthTag();
  }, MEASURE_MS / 2);
  const us = (perSecond) => 1e6 / perSecond;
  const floor = 6 * us(dhPerSecond) + 2 * us(ephemeralPerSecond) + 2 * us(importPerSecond);
  console.log(
    `ref    node:crypto X25519 DH ${us(dhPerSecond).toFixed(1)} us; ephemeral (keygen + public) ${us(ephemeralPerSecond).toFixed(1)} us; public key import (JWK) ${us(importPerSecond).toFixed(1)} us`,
  );
  console.log(
    `ref    X25519 floor of one IKpsk2 handshake pair: ${floor.toFixed(0)} us = at most ${(1e6 / floor).toFixed(0)} handshakes/s before any hashing or AEAD`,
  );
  console.log(
    `ref    chacha20-poly1305 16 KiB one-shot (no framing, ciphertext and tag left apart) ${((aeadPerSecond * plaintext.length) / 1e6).toFixed(0)} MB/s`,
  );
}

console.log(`# crypto benchmark (${process.version}, ${MEASURE_MS} ms per measurement)`);
if (BACKENDS.includes('node')) benchReference();
for (const name of BACKENDS) {
  const backend = getBackend(name);
  const handshakes = benchHandshake(backend);
  console.log(`${name.padEnd(6)} handshakes  ${PROTOCOL}: ${handshakes.toFixed(0)} /s`);
  for (const [label, size] of SIZES) {
    const { encrypt, decrypt } = benchTransport(backend, size);
    console.log(
      `${name.padEnd(6)} transport   ${label.padEnd(10)} encrypt ${encrypt.toFixed(0).padStart(5)} MB/s   decrypt ${decrypt.toFixed(0).padStart(5)} MB/s`,
    );
  }
}
