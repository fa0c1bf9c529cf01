/**
 * Strict base64url (RFC 4648 §5, no padding) for handshake headers: only the canonical encoding of
 * some byte string is accepted, so one message has exactly one header value.
 */
import { SessionError } from '../errors.js';

const ALPHABET = /^[A-Za-z0-9_-]*$/;

export function encodeBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Decodes `text`, throwing ERR_SESSION_BAD_MESSAGE on anything but canonical unpadded base64url. */
export function decodeBase64Url(text: string, maxChars: number, what: string): Uint8Array {
  if (text.length > maxChars) {
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', `${what}: ${text.length} characters, at most ${maxChars}`);
  }
  if (!ALPHABET.test(text) || text.length % 4 === 1) {
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', `${what}: not base64url`);
  }
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) {
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', `${what}: not canonical base64url`);
  }
  return new Uint8Array(bytes);
}
