/**
 * Runs Noise test vectors in the cacophony JSON format (see ../shared/noise-vectors/README.md):
 * every handshake message byte for byte in both directions, payloads, the handshake hash and the
 * transport messages after Split().
 */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CryptoBackend, KeyPair } from '../../src/crypto/backend.js';
import { HandshakeState } from '../../src/noise/handshake-state.js';
import { parseProtocolName } from '../../src/noise/protocol-name.js';

export interface NoiseVector {
  readonly protocol_name: string;
  readonly init_prologue?: string;
  readonly resp_prologue?: string;
  readonly init_psks?: readonly string[];
  readonly resp_psks?: readonly string[];
  readonly init_static?: string;
  readonly resp_static?: string;
  readonly init_ephemeral?: string;
  readonly resp_ephemeral?: string;
  readonly init_remote_static?: string;
  readonly resp_remote_static?: string;
  readonly handshake_hash?: string;
  readonly messages: readonly { readonly payload: string; readonly ciphertext: string }[];
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The shared vectors directory, a sibling of the repository (the team's layout). */
export const SHARED_VECTORS_DIR = path.resolve(repoRoot, '..', 'shared', 'noise-vectors');
/** The repository's own copy (test/fixtures/noise-vectors/README.md), for a clone anywhere else. */
export const FIXTURE_VECTORS_DIR = path.resolve(repoRoot, 'test', 'fixtures', 'noise-vectors');

/** Loads a vector file; throws (with the file name) when it cannot be read or has the wrong shape. */
export function loadVectors(file: string): NoiseVector[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`noise vectors ${file}: cannot read or parse: ${(err as Error).message}`, { cause: err });
  }
  const vectors = (parsed as { vectors?: unknown }).vectors;
  if (!Array.isArray(vectors) || vectors.length === 0) throw new Error(`noise vectors ${file}: no "vectors" array`);
  vectors.forEach((v: unknown, i) => {
    const vector = v as Partial<NoiseVector>;
    if (typeof vector.protocol_name !== 'string' || !Array.isArray(vector.messages)) {
      throw new Error(`noise vectors ${file}: vector ${i} lacks protocol_name or messages`);
    }
  });
  return vectors as NoiseVector[];
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const bytes = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, 'hex'));

// The vectors reuse a handful of keys: deriving each public key once per backend keeps the run fast.
const pairs = new Map<string, KeyPair>();

function pair(privateHex: string | undefined, backend: CryptoBackend): KeyPair | undefined {
  if (privateHex === undefined) return undefined;
  const id = `${backend.name}:${privateHex}`;
  let found = pairs.get(id);
  if (found === undefined) {
    const privateKey = bytes(privateHex);
    found = { privateKey, publicKey: backend.publicKeyFromPrivate(privateKey) };
    pairs.set(id, found);
  }
  return found;
}

function party(v: NoiseVector, initiator: boolean, backend: CryptoBackend): HandshakeState {
  const side = initiator ? 'init' : 'resp';
  const s = pair(v[`${side}_static`], backend);
  const e = pair(v[`${side}_ephemeral`], backend);
  const rs = v[`${side}_remote_static`];
  const psks = v[`${side}_psks`];
  const prologue = v[`${side}_prologue`];
  return new HandshakeState({
    protocolName: v.protocol_name,
    initiator,
    backend,
    ...(prologue !== undefined ? { prologue: bytes(prologue) } : {}),
    ...(s !== undefined ? { s } : {}),
    ...(e !== undefined ? { e } : {}),
    ...(rs !== undefined ? { rs: bytes(rs) } : {}),
    ...(psks !== undefined ? { psks: psks.map(bytes) } : {}),
  });
}

function check(actual: string, expected: string, what: string): void {
  if (actual !== expected) throw new Error(`${what}: got ${actual}, expected ${expected}`);
}

/** Runs one vector; throws a descriptive error on the first mismatch. Returns the checks made. */
export function runVector(v: NoiseVector, backend: CryptoBackend): number {
  const suite = parseProtocolName(v.protocol_name);
  const handshakeMessages = suite.pattern.messages.length;
  if (v.messages.length < handshakeMessages) throw new Error(`${v.protocol_name}: fewer messages than the pattern has`);
  const init = party(v, true, backend);
  const resp = party(v, false, backend);
  let checks = 0;
  for (let i = 0; i < handshakeMessages; i++) {
    const { payload, ciphertext } = v.messages[i]!;
    const [sender, receiver] = i % 2 === 0 ? [init, resp] : [resp, init];
    check(hex(sender.writeMessage(bytes(payload))), ciphertext, `handshake message ${i} written`);
    check(hex(receiver.readMessage(bytes(ciphertext))), payload, `handshake message ${i} payload read`);
    checks += 2;
  }
  if (!init.isFinished || !resp.isFinished) throw new Error('handshake not finished after the last message');
  if (v.handshake_hash !== undefined) {
    check(hex(init.handshakeHash), v.handshake_hash, 'initiator handshake hash');
    check(hex(resp.handshakeHash), v.handshake_hash, 'responder handshake hash');
    checks += 2;
  }
  const initStates = init.split();
  const respStates = resp.split();
  for (let i = handshakeMessages; i < v.messages.length; i++) {
    const { payload, ciphertext } = v.messages[i]!;
    const fromInitiator = suite.pattern.oneWay || i % 2 === 0;
    const [send, receive] = fromInitiator ? [initStates.send, respStates.receive] : [respStates.send, initStates.receive];
    check(hex(send.encryptWithAd(new Uint8Array(0), bytes(payload))), ciphertext, `transport message ${i} written`);
    check(hex(receive.decryptWithAd(new Uint8Array(0), bytes(ciphertext))), payload, `transport message ${i} read`);
    checks += 2;
  }
  return checks;
}
