/**
 * Wire constants of the twoway session protocol (docs/PROTOCOL.md). Changing any of these is a
 * protocol version change.
 */
import { PROTOCOL_VERSION } from '../version.js';

/** The Noise protocol, fixed: no negotiation, no fallback. */
export const NOISE_PROTOCOL_NAME = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';

/** Largest Noise message (Noise §3). */
export const NOISE_MAX_MESSAGE_BYTES = 65_535;
/** ChaCha20-Poly1305 tag. */
export const AEAD_TAG_BYTES = 16;
/** Cleartext record header: one byte (key phase bit; other bits reserved, zero). */
export const RECORD_HEADER_BYTES = 1;
/** A record is the header plus one Noise transport message. */
export const MAX_RECORD_BYTES = RECORD_HEADER_BYTES + NOISE_MAX_MESSAGE_BYTES;
/** Smallest record: header, tag and the inner type byte. */
export const MIN_RECORD_BYTES = RECORD_HEADER_BYTES + AEAD_TAG_BYTES + 1;
/** Largest message the layer above may send in one data record. */
export const MAX_DATA_BYTES = NOISE_MAX_MESSAGE_BYTES - AEAD_TAG_BYTES - 1;

/** Request header carrying handshake message 1, response header carrying message 2 (base64url). */
export const HANDSHAKE_HEADER = 'Twoway-Handshake';
/** Sent with every 401: the server's static public key (base64url), for a plain error message. */
export const SERVER_KEY_HEADER = 'Twoway-Server-Key';
/**
 * Upgrade request header `Twoway-Mux-Settings: 1`: the client understands the mux SETTINGS frame,
 * so the server may send one (docs/STREAMS.md, "SETTINGS"). Older peers neither send nor read it.
 */
export const MUX_SETTINGS_HEADER = 'Twoway-Mux-Settings';
/** Longest accepted handshake header value (characters). */
export const MAX_HANDSHAKE_HEADER_CHARS = 1_024;

/** The psk used when a peer has none (Noise requires a psk token's key to be 32 bytes). */
export const ZERO_PSK: Uint8Array = new Uint8Array(32);

/** What the prologue and the subprotocol bind: tests build other versions from this shape. */
export interface WireProtocol {
  readonly version: number;
  /** WebSocket subprotocol, e.g. "twoway.v1". */
  readonly subprotocol: string;
  /** Prologue of the initial handshake. */
  readonly prologue: Uint8Array;
}

/** Builds the wire description of a protocol version: subprotocol and prologue both name it. */
export function wireProtocol(version: number): WireProtocol {
  const subprotocol = `twoway.v${version}`;
  return Object.freeze({
    version,
    subprotocol,
    prologue: new TextEncoder().encode(`twoway handshake v${version} ${subprotocol}`),
  });
}

/** The protocol this build speaks. */
export const WIRE: WireProtocol = wireProtocol(PROTOCOL_VERSION);

/** Prologue of an in-band rekey: distinct from the initial one and bound to the previous handshake. */
export function rekeyPrologue(wire: WireProtocol, previousHandshakeHash: Uint8Array): Uint8Array {
  const label = new TextEncoder().encode(`twoway rekey v${wire.version} ${wire.subprotocol}`);
  const out = new Uint8Array(label.length + previousHandshakeHash.length);
  out.set(label, 0);
  out.set(previousHandshakeHash, label.length);
  return out;
}
