/**
 * Payloads of the two handshake messages (docs/PROTOCOL.md "Handshake payloads"). Both are
 * encrypted and authenticated by Noise; these functions only give the decrypted bytes a shape.
 *
 *   message 1: tai64n[12] | options-version[1] = 1 | flags[1] | invite id[16] when flags has JOIN
 *   message 2: options-version[1] = 1 | flags[1] = 0
 *
 * Message 1's flag bit 0 (JOIN) marks a join by invitation (docs/PROTOCOL.md §12): the invite id
 * follows, and the server keys message 2 with that invitation's psk. Other flags are reserved and
 * must be zero, and the lengths exact: a later version changes the options version.
 */
import { SessionError } from '../errors.js';
import { TAI64N_BYTES } from './tai64n.js';

export const SESSION_OPTIONS_VERSION = 1;
export const INITIATION_PAYLOAD_BYTES = TAI64N_BYTES + 2;
export const RESPONSE_PAYLOAD_BYTES = 2;
/** Message 1 flag: a join by invitation, the invite id follows. */
export const FLAG_JOIN = 0x01;
export const JOIN_ID_BYTES = 16;
export const JOIN_INITIATION_PAYLOAD_BYTES = INITIATION_PAYLOAD_BYTES + JOIN_ID_BYTES;

export interface InitiationPayload {
  readonly timestamp: Uint8Array;
  /** The invite id of a join (flag JOIN); absent for an allowlisted key's handshake. */
  readonly joinId?: Uint8Array;
}

export function encodeInitiationPayload(timestamp: Uint8Array, joinId?: Uint8Array): Uint8Array {
  if (timestamp.length !== TAI64N_BYTES) throw new RangeError(`timestamp: expected ${TAI64N_BYTES} bytes, got ${timestamp.length}`);
  if (joinId !== undefined && joinId.length !== JOIN_ID_BYTES) throw new RangeError(`invite id: expected ${JOIN_ID_BYTES} bytes, got ${joinId.length}`);
  const out = new Uint8Array(joinId === undefined ? INITIATION_PAYLOAD_BYTES : JOIN_INITIATION_PAYLOAD_BYTES);
  out.set(timestamp, 0);
  out[TAI64N_BYTES] = SESSION_OPTIONS_VERSION;
  if (joinId !== undefined) {
    out[TAI64N_BYTES + 1] = FLAG_JOIN;
    out.set(joinId, INITIATION_PAYLOAD_BYTES);
  }
  return out;
}

function checkVersion(bytes: Uint8Array, offset: number, what: string): void {
  if (bytes[offset] !== SESSION_OPTIONS_VERSION) {
    throw new SessionError('ERR_SESSION_PROTOCOL_VERSION', `${what}: session options version ${bytes[offset]}, expected ${SESSION_OPTIONS_VERSION}`);
  }
}

function checkOptions(bytes: Uint8Array, offset: number, what: string): void {
  checkVersion(bytes, offset, what);
  if (bytes[offset + 1] !== 0) throw new SessionError('ERR_SESSION_BAD_MESSAGE', `${what}: reserved flags set`);
}

export function decodeInitiationPayload(bytes: Uint8Array): InitiationPayload {
  if (bytes.length >= INITIATION_PAYLOAD_BYTES) checkVersion(bytes, TAI64N_BYTES, 'initiation payload');
  const flags = bytes.length >= INITIATION_PAYLOAD_BYTES ? bytes[TAI64N_BYTES + 1]! : 0;
  if ((flags & ~FLAG_JOIN) !== 0) throw new SessionError('ERR_SESSION_BAD_MESSAGE', 'initiation payload: reserved flags set');
  const expected = flags === FLAG_JOIN ? JOIN_INITIATION_PAYLOAD_BYTES : INITIATION_PAYLOAD_BYTES;
  if (bytes.length !== expected) {
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', `initiation payload: expected ${expected} bytes, got ${bytes.length}`);
  }
  const timestamp = bytes.slice(0, TAI64N_BYTES);
  return flags === FLAG_JOIN ? { timestamp, joinId: bytes.slice(INITIATION_PAYLOAD_BYTES) } : { timestamp };
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
