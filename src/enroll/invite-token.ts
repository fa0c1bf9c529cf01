/**
 * The invitation token `twoway invite` prints and `twoway join` reads (docs/PROTOCOL.md §12.1):
 *
 *   "twoway-invite:" base64url( version[1] = 1 | invite id[16] | secret[32] | server static key[32]
 *                               | url length[2, big-endian] | url[UTF-8] | check[4] )
 *
 * `check` is the first 4 bytes of BLAKE2s-256 of everything before it: it catches a token copied
 * short or mistyped (it is no MAC; the secret is what the server checks, inside the handshake).
 * Every shape error reads the same to the person holding the token: it is damaged.
 */
import { blake2s as nobleBlake2s } from '@noble/hashes/blake2.js';
import { blake2s } from '../crypto/blake2s.js';
import { EnrollError } from '../errors.js';

export const INVITE_TOKEN_PREFIX = 'twoway-invite:';
export const INVITE_TOKEN_VERSION = 1;
export const INVITE_ID_BYTES = 16;
export const INVITE_SECRET_BYTES = 32;
export const INVITE_CHECK_BYTES = 4;
/** Longest server URL a token carries (bytes of UTF-8). */
export const MAX_INVITE_URL_BYTES = 512;
const FIXED_BYTES = 1 + INVITE_ID_BYTES + INVITE_SECRET_BYTES + 32 + 2;
/** Longest token text accepted (prefix and base64url of the largest payload). */
export const MAX_INVITE_TOKEN_CHARS = INVITE_TOKEN_PREFIX.length + Math.ceil(((FIXED_BYTES + MAX_INVITE_URL_BYTES + INVITE_CHECK_BYTES) * 4) / 3);
/** The message of every damaged token. */
export const DAMAGED_TOKEN = 'the invitation token is damaged (check it was copied whole)';
/** The key-derivation label of the join psk. */
const PSK_LABEL = new TextEncoder().encode('twoway invite psk v1');

export interface InviteToken {
  readonly id: Uint8Array;
  readonly secret: Uint8Array;
  readonly serverPublicKey: Uint8Array;
  /** The server's ws:// or wss:// URL, path included. */
  readonly url: string;
}

function damaged(why: string): EnrollError {
  // `why` names the check that failed, never a byte of the token.
  return new EnrollError('ERR_INVITE_TOKEN', `${DAMAGED_TOKEN}: ${why}`);
}

function checkBytes(value: Uint8Array, length: number, what: string): void {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what}: expected a Uint8Array`);
  if (value.length !== length) throw new RangeError(`${what}: expected ${length} bytes, got ${value.length}`);
}

/** True for a ws:// or wss:// URL with a host. */
export function isServerUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'ws:' || url.protocol === 'wss:') && url.host !== '' && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

/** Encodes a token. Throws RangeError/TypeError on a bad field (the caller's bug or a bad --url). */
export function encodeInviteToken(token: InviteToken): string {
  checkBytes(token.id, INVITE_ID_BYTES, 'invite id');
  checkBytes(token.secret, INVITE_SECRET_BYTES, 'invite secret');
  checkBytes(token.serverPublicKey, 32, 'server public key');
  const url = new TextEncoder().encode(token.url);
  if (url.length > MAX_INVITE_URL_BYTES) throw new RangeError(`server URL: at most ${MAX_INVITE_URL_BYTES} bytes, got ${url.length}`);
  if (!isServerUrl(token.url)) throw new RangeError('server URL: expected ws://HOST[:PORT]/PATH or wss://...');
  const body = new Uint8Array(FIXED_BYTES + url.length + INVITE_CHECK_BYTES);
  let at = 0;
  body[at++] = INVITE_TOKEN_VERSION;
  body.set(token.id, at);
  at += INVITE_ID_BYTES;
  body.set(token.secret, at);
  at += INVITE_SECRET_BYTES;
  body.set(token.serverPublicKey, at);
  at += 32;
  body[at++] = url.length >>> 8;
  body[at++] = url.length & 0xff;
  body.set(url, at);
  at += url.length;
  body.set(blake2s(body.subarray(0, at)).subarray(0, INVITE_CHECK_BYTES), at);
  const text = INVITE_TOKEN_PREFIX + Buffer.from(body.buffer, body.byteOffset, body.length).toString('base64url');
  body.fill(0);
  return text;
}

/**
 * Decodes a token as pasted: surrounding white space is ignored, anything else must be exact
 * (prefix, canonical base64url, version, lengths, check, URL). Throws ERR_INVITE_TOKEN.
 */
export function decodeInviteToken(pasted: string): InviteToken {
  const text = pasted.trim();
  if (text.length > MAX_INVITE_TOKEN_CHARS) throw damaged(`longer than ${MAX_INVITE_TOKEN_CHARS} characters`);
  if (!text.startsWith(INVITE_TOKEN_PREFIX)) throw damaged(`it does not start with ${INVITE_TOKEN_PREFIX}`);
  const encoded = text.slice(INVITE_TOKEN_PREFIX.length);
  if (!/^[A-Za-z0-9_-]*$/.test(encoded) || encoded.length % 4 === 1) throw damaged('not base64url');
  const bytes = new Uint8Array(Buffer.from(encoded, 'base64url'));
  try {
    if (Buffer.from(bytes).toString('base64url') !== encoded) throw damaged('not canonical base64url');
    if (bytes.length < FIXED_BYTES + INVITE_CHECK_BYTES) throw damaged('too short');
    if (bytes[0] !== INVITE_TOKEN_VERSION) throw damaged(`version ${bytes[0]}, this twoway reads version ${INVITE_TOKEN_VERSION}`);
    const urlLength = (bytes[FIXED_BYTES - 2]! << 8) | bytes[FIXED_BYTES - 1]!;
    if (urlLength > MAX_INVITE_URL_BYTES || bytes.length !== FIXED_BYTES + urlLength + INVITE_CHECK_BYTES) throw damaged('wrong length');
    const end = bytes.length - INVITE_CHECK_BYTES;
    const digest = blake2s(bytes.subarray(0, end));
    let diff = 0;
    for (let i = 0; i < INVITE_CHECK_BYTES; i++) diff |= digest[i]! ^ bytes[end + i]!;
    if (diff !== 0) throw damaged('the check does not match');
    let url: string;
    try {
      url = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(FIXED_BYTES, end));
    } catch {
      throw damaged('the server URL is not UTF-8');
    }
    if (!isServerUrl(url)) throw damaged('the server URL is not a ws:// or wss:// URL');
    return {
      id: bytes.slice(1, 1 + INVITE_ID_BYTES),
      secret: bytes.slice(1 + INVITE_ID_BYTES, 1 + INVITE_ID_BYTES + INVITE_SECRET_BYTES),
      serverPublicKey: bytes.slice(1 + INVITE_ID_BYTES + INVITE_SECRET_BYTES, FIXED_BYTES - 2),
      url,
    };
  } finally {
    bytes.fill(0);
  }
}

/** The join handshake's psk: BLAKE2s-256 keyed with the secret, of "twoway invite psk v1". */
export function invitePsk(secret: Uint8Array): Uint8Array {
  checkBytes(secret, INVITE_SECRET_BYTES, 'invite secret');
  return nobleBlake2s(PSK_LABEL, { key: secret, dkLen: 32 });
}

/** The invite id as written in invites.json and `twoway invites list` (base64url, 22 characters). */
export function inviteIdText(id: Uint8Array): string {
  checkBytes(id, INVITE_ID_BYTES, 'invite id');
  return Buffer.from(id.buffer, id.byteOffset, id.length).toString('base64url');
}
