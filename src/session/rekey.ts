/**
 * In-band rekey: a fresh Noise_IKpsk2 exchange inside the encrypted channel, with new ephemeral
 * keys on both sides (forward secrecy) and both static keys proven again. Its prologue differs from
 * the initial handshake's and binds the previous handshake hash, so a rekey message can only ever
 * belong to this session. Replay needs no timestamp here: the records carrying it are already
 * protected by the channel's nonces.
 *
 *   initiator (client)                         responder (server)
 *   rekey-init  [phase p]  e, es, s, ss  ->
 *                                        <-   rekey-response [phase p]  e, ee, se, psk
 *                                              (server now sends with phase p^1)
 *   (client switches both directions to p^1 and sends a keepalive [phase p^1])
 *                                              (server switches its receive key on that record)
 */
import { HandshakeState } from '../noise/handshake-state.js';
import { constantTimeEqual, type KeyPair } from '../crypto/keys.js';
import { SessionError } from '../errors.js';
import { NOISE_PROTOCOL_NAME, rekeyPrologue, type WireProtocol } from './wire.js';

export type TransportKeys = ReturnType<HandshakeState['split']>;
export type CipherState = TransportKeys['send'];

/** The local static X25519 key pair (raw 32-byte keys). */
export type StaticKeyPair = KeyPair;

export interface RekeyContext {
  readonly wire: WireProtocol;
  readonly previousHandshakeHash: Uint8Array;
  readonly localStatic: StaticKeyPair;
  readonly remoteStatic: Uint8Array;
}

export interface RekeyResult {
  readonly keys: TransportKeys;
  readonly handshakeHash: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** Initiator: the rekey-init body (e, es, s, ss) and the state awaiting the response. */
export function writeRekeyInitiation(ctx: RekeyContext, psk: Uint8Array): { message: Uint8Array; state: HandshakeState } {
  const state = new HandshakeState({
    protocolName: NOISE_PROTOCOL_NAME,
    initiator: true,
    prologue: rekeyPrologue(ctx.wire, ctx.previousHandshakeHash),
    s: { publicKey: ctx.localStatic.publicKey, privateKey: ctx.localStatic.privateKey },
    rs: ctx.remoteStatic,
    psks: [psk],
  } as ConstructorParameters<typeof HandshakeState>[0]);
  return { message: state.writeMessage(EMPTY), state };
}

/** Initiator: consumes the rekey-response (e, ee, se, psk) and derives the new keys. */
export function readRekeyResponse(state: HandshakeState, message: Uint8Array): RekeyResult {
  const payload = state.readMessage(message);
  if (payload.length !== 0) throw new SessionError('ERR_SESSION_BAD_MESSAGE', 'rekey response: unexpected payload');
  return { keys: state.split(), handshakeHash: state.handshakeHash.slice() };
}

/**
 * Responder: consumes a rekey-init, checks it comes from the session's own client key, asks for
 * that key's current psk (undefined: revoked) and answers. Returns 'revoked' when the key is gone.
 */
export function respondToRekey(
  ctx: RekeyContext,
  message: Uint8Array,
  currentPsk: () => Uint8Array | undefined,
): (RekeyResult & { message: Uint8Array }) | 'revoked' {
  const state = new HandshakeState({
    protocolName: NOISE_PROTOCOL_NAME,
    initiator: false,
    prologue: rekeyPrologue(ctx.wire, ctx.previousHandshakeHash),
    s: { publicKey: ctx.localStatic.publicKey, privateKey: ctx.localStatic.privateKey },
  } as ConstructorParameters<typeof HandshakeState>[0]);
  const payload = state.readMessage(message);
  if (payload.length !== 0) throw new SessionError('ERR_SESSION_BAD_MESSAGE', 'rekey init: unexpected payload');
  const remote = state.remoteStaticPublicKey;
  if (remote === undefined || remote === null || !constantTimeEqual(remote, ctx.remoteStatic)) {
    throw new SessionError('ERR_SESSION_AUTH', 'rekey init from a different static key');
  }
  const psk = currentPsk();
  if (psk === undefined) return 'revoked';
  state.setPsks([psk]);
  const reply = state.writeMessage(EMPTY);
  return { message: reply, keys: state.split(), handshakeHash: state.handshakeHash.slice() };
}
