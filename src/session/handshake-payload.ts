/**
 * Payloads of the two handshake messages (docs/PROTOCOL.md "Handshake payloads"). Both are
 * encrypted and authenticated by Noise; these functions only give the decrypted bytes a shape.
 *
 *   message 1: tai64n[12] | options-version[1] = 1 | flags[1] = 0
 *   message 2: options-version[1] = 1 | flags[1] = 0
 *
 * Reserved flags must be zero and the lengths exact: a later version changes the options version.
 */
import { SessionError } from '../errors.js';
import { TAI64N_BYTES } from './tai64n.js';

export const SESSION_OPTIONS_VERSION = 1;
export const INITIATION_PAYLOAD_BYTES = TAI64N_BYTES + 2;
export const RESPONSE_PAYLOAD_BYTES = 2;

export interface InitiationPayload {
  readonly timestamp: Uint8Array;
}

export function encodeInitiationPayload(timestamp: Uint8Array): Uint8Array {
  if (timestamp.length !== TAI64N_BYTES) throw new RangeError(`timestamp: expected ${TAI64N_BYTES} bytes, got ${timestamp.length}`);
  const out = new Uint8Array(INITIATION_PAYLOAD_BYTES);
  out.set(timestamp, 0);
  out[TAI64N_BYTES] = SESSION_OPTIONS_VERSION;
  return out;
}

function checkOptions(bytes: Uint8Array, offset: number, what: string): void {
  if (bytes[offset] !== SESSION_OPTIONS_VERSION) {
    throw new SessionError('ERR_SESSION_PROTOCOL_VERSION', `${what}: session options version ${bytes[offset]}, expected ${SESSION_OPTIONS_VERSION}`);
  }
  if (bytes[offset + 1] !== 0) throw new SessionError('ERR_SESSION_BAD_MESSAGE', `${what}: reserved flags set`);
}

export function decodeInitiationPayload(bytes: Uint8Array): InitiationPayload {
  if (bytes.length !== INITIATION_PAYLOAD_BYTES) {
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', `initiation payload: expected ${INITIATION_PAYLOAD_BYTES} bytes, got ${bytes.length}`);
  }
  checkOptions(bytes, TAI64N_BYTES, 'initiation payload');
  return { timestamp: bytes.slice(0, TAI64N_BYTES) };
}

export function encodeResponsePayload(): Uint8Array {
  return Uint8Array.of(SESSION_OPTIONS_VERSION, 0);
}

export function decodeResponsePayload(bytes: Uint8Array): void {
  if (bytes.length !== RESPONSE_PAYLOAD_BYTES) {
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', `response payload: expected ${RESPONSE_PAYLOAD_BYTES} bytes, got ${bytes.length}`);
  }
  checkOptions(bytes, 0, 'response payload');
}
