/** Shared setup for Noise unit tests. */

import { expect } from 'vitest';
import type { CryptoBackend, KeyPair } from '../../src/crypto/backend.js';
import { defaultBackend } from '../../src/crypto/get-backend.js';
import { NoiseError, type ErrorCode } from '../../src/errors.js';
import { HandshakeState } from '../../src/noise/handshake-state.js';

export const IK = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const PROLOGUE = new TextEncoder().encode('twoway test prologue');

export interface IkParties {
  readonly initiator: HandshakeState;
  readonly responder: HandshakeState;
  readonly client: KeyPair;
  readonly server: KeyPair;
  readonly psk: Uint8Array;
}

/** An IKpsk2 initiator/responder pair, the responder given its psk up front unless `lateResponderPsk`. */
export function ikParties(backend: CryptoBackend = defaultBackend, lateResponderPsk = false): IkParties {
  const client = backend.generateKeyPair();
  const server = backend.generateKeyPair();
  const psk = new Uint8Array(32).fill(7);
  const initiator = new HandshakeState({ protocolName: IK, initiator: true, prologue: PROLOGUE, s: client, rs: server.publicKey, psks: [psk], backend });
  const responder = new HandshakeState({
    protocolName: IK,
    initiator: false,
    prologue: PROLOGUE,
    s: server,
    backend,
    ...(lateResponderPsk ? {} : { psks: [psk] }),
  });
  return { initiator, responder, client, server, psk };
}

/** Asserts that `fn` throws a NoiseError (or subclass of TwowayError) with `code`. */
export function expectCode(fn: () => unknown, code: ErrorCode, errorClass: abstract new (...args: never[]) => Error = NoiseError): Error {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(errorClass);
  expect((caught as { code?: string }).code).toBe(code);
  return caught as Error;
}

/** Flips one bit of a copy. */
export function flipBit(bytes: Uint8Array, index: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[index]! ^= 0x01;
  return copy;
}
