/**
 * The initial handshake, Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, carried in the HTTP upgrade:
 *
 *   client -> server  GET <path>, Twoway-Handshake: base64url( e, es, s, ss, {tai64n, options} )
 *   server -> client  101,        Twoway-Handshake: base64url( e, ee, se, psk, {options} )
 *
 * Functions are named after the WireGuard steps they mirror. Each throws on any failure; the
 * callers turn every throw into one indistinguishable refusal.
 */
import { HandshakeState } from '../noise/handshake-state.js';
import { SessionError } from '../errors.js';
import { decodeInitiationPayload, decodeResponsePayload, encodeInitiationPayload, encodeResponsePayload } from './handshake-payload.js';
import type { StaticKeyPair, TransportKeys } from './rekey.js';
import { tai64nNow } from './tai64n.js';
import { NOISE_PROTOCOL_NAME, type WireProtocol } from './wire.js';

type HandshakeOptions = ConstructorParameters<typeof HandshakeState>[0];

export interface CompletedHandshake {
  readonly keys: TransportKeys;
  readonly handshakeHash: Uint8Array;
}

/** Client: message 1 (e, es, s, ss, {timestamp, options}) and the state awaiting message 2. */
export function createInitiation(
  wire: WireProtocol,
  localStatic: StaticKeyPair,
  serverPublicKey: Uint8Array,
  psk: Uint8Array,
  timestamp: Uint8Array = tai64nNow(),
  joinId?: Uint8Array,
): { message: Uint8Array; state: HandshakeState } {
  const state = new HandshakeState({
    protocolName: NOISE_PROTOCOL_NAME,
    initiator: true,
    prologue: wire.prologue,
    s: { publicKey: localStatic.publicKey, privateKey: localStatic.privateKey },
    rs: serverPublicKey,
    psks: [psk],
  } as HandshakeOptions);
  return { message: state.writeMessage(encodeInitiationPayload(timestamp, joinId)), state };
}

/** Server: the state after message 1, with the client's static key and timestamp revealed. */
export interface ConsumedInitiation {
  readonly state: HandshakeState;
  readonly clientPublicKey: Uint8Array;
  readonly timestamp: Uint8Array;
  /** A join by invitation: the invite id from the payload (docs/PROTOCOL.md §12). */
  readonly joinId?: Uint8Array;
}

/** Server: consumes message 1. The client's key is not yet proven to be live (IK replays). */
export function consumeInitiation(wire: WireProtocol, localStatic: StaticKeyPair, message: Uint8Array): ConsumedInitiation {
  const state = new HandshakeState({
    protocolName: NOISE_PROTOCOL_NAME,
    initiator: false,
    prologue: wire.prologue,
    s: { publicKey: localStatic.publicKey, privateKey: localStatic.privateKey },
  } as HandshakeOptions);
  const payload = state.readMessage(message);
  const clientPublicKey = state.remoteStaticPublicKey;
  if (clientPublicKey === undefined || clientPublicKey === null) {
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', 'message 1 carried no static key');
  }
  const { timestamp, joinId } = decodeInitiationPayload(payload);
  return { state, clientPublicKey: Uint8Array.from(clientPublicKey), timestamp, ...(joinId !== undefined ? { joinId } : {}) };
}

/** Server: message 2 (e, ee, se, psk, {options}) and the transport keys. */
export function createResponse(consumed: ConsumedInitiation, psk: Uint8Array): CompletedHandshake & { message: Uint8Array } {
  consumed.state.setPsks([psk]);
  const message = consumed.state.writeMessage(encodeResponsePayload());
  return { message, keys: consumed.state.split(), handshakeHash: consumed.state.handshakeHash.slice() };
}

/** Client: consumes message 2 and derives the transport keys. */
export function consumeResponse(state: HandshakeState, message: Uint8Array): CompletedHandshake {
  decodeResponsePayload(state.readMessage(message));
  return { keys: state.split(), handshakeHash: state.handshakeHash.slice() };
}
