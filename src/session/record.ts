/**
 * Record layout (docs/PROTOCOL.md "Records"). Every WebSocket message after the handshake is one
 * record:
 *
 *   header[1] | ChaCha20-Poly1305( key[phase], nonce = implicit counter, ad = header,
 *                                  type[1] | body )
 *
 * header bit 0 is the key phase; bits 1..7 are reserved and must be zero. The header is the AD,
 * so a flipped phase bit fails authentication like any other change.
 */
import type { CloseCode } from '../channel.js';
import { SessionError, assertNever } from '../errors.js';

export const RecordType = {
  data: 0x00,
  keepalive: 0x01,
  rekeyInit: 0x02,
  rekeyResponse: 0x03,
  rekeyRequest: 0x04,
  close: 0x05,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export const KEY_PHASE_MASK = 0x01;

/** The header byte of each phase, shared: it is also the AD. */
export const PHASE_HEADERS: readonly [Uint8Array, Uint8Array] = [Uint8Array.of(0), Uint8Array.of(1)];

/** The inner type byte of each record type, preallocated for the hot path. */
export const TYPE_BYTES: Readonly<Record<RecordType, Uint8Array>> = {
  0: Uint8Array.of(0),
  1: Uint8Array.of(1),
  2: Uint8Array.of(2),
  3: Uint8Array.of(3),
  4: Uint8Array.of(4),
  5: Uint8Array.of(5),
};

/** Close reason codes carried in close records. 'transport-closed' is never sent. */
const CLOSE_CODE_TO_WIRE = {
  normal: 0,
  shutdown: 1,
  revoked: 2,
  'auth-failed': 3,
  'protocol-error': 4,
  timeout: 5,
  replaced: 6,
} as const satisfies Record<Exclude<CloseCode, 'transport-closed'>, number>;

const WIRE_TO_CLOSE_CODE: readonly Exclude<CloseCode, 'transport-closed'>[] = [
  'normal',
  'shutdown',
  'revoked',
  'auth-failed',
  'protocol-error',
  'timeout',
  'replaced',
];

/** Longest operator message carried in a close record, in bytes of UTF-8. */
export const MAX_CLOSE_MESSAGE_BYTES = 240;

/** Parses the header byte; throws on reserved bits. */
export function parseRecordHeader(byte: number): 0 | 1 {
  if ((byte & ~KEY_PHASE_MASK) !== 0) {
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', `record header 0x${byte.toString(16)}: reserved bits set`);
  }
  return (byte & KEY_PHASE_MASK) as 0 | 1;
}

/** Checks a decrypted type byte. */
export function parseRecordType(byte: number | undefined): RecordType {
  if (byte === undefined || byte > RecordType.close) {
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', `unknown record type ${String(byte)}`);
  }
  return byte as RecordType;
}

/** Body of a close record: code[1] | UTF-8 message (0..240 bytes). */
export function encodeCloseBody(code: CloseCode, message: string | undefined): Uint8Array {
  const wireCode = code === 'transport-closed' ? CLOSE_CODE_TO_WIRE.normal : CLOSE_CODE_TO_WIRE[code];
  let text = new TextEncoder().encode(message ?? '');
  if (text.length > MAX_CLOSE_MESSAGE_BYTES) text = text.subarray(0, MAX_CLOSE_MESSAGE_BYTES);
  const out = new Uint8Array(1 + text.length);
  out[0] = wireCode;
  out.set(text, 1);
  return out;
}

export function decodeCloseBody(body: Uint8Array): { code: CloseCode; message?: string } {
  const code = WIRE_TO_CLOSE_CODE[body[0] ?? 255];
  if (code === undefined || body.length - 1 > MAX_CLOSE_MESSAGE_BYTES) {
    throw new SessionError('ERR_SESSION_BAD_MESSAGE', 'malformed close record');
  }
  if (body.length === 1) return { code };
  // Lossy decoding: the text is for the operator's log only.
  return { code, message: new TextDecoder('utf-8', { fatal: false }).decode(body.subarray(1)) };
}

/** For logs: a record type's name. */
export function recordTypeName(type: RecordType): string {
  switch (type) {
    case RecordType.data:
      return 'data';
    case RecordType.keepalive:
      return 'keepalive';
    case RecordType.rekeyInit:
      return 'rekey-init';
    case RecordType.rekeyResponse:
      return 'rekey-response';
    case RecordType.rekeyRequest:
      return 'rekey-request';
    case RecordType.close:
      return 'close';
    default:
      return assertNever(type, 'record type');
  }
}
