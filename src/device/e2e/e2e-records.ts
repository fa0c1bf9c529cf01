/**
 * The framing of an end-to-end stream (docs/PROTOCOL.md, "Device endpoints"): every message on
 * the inner stream is a u16 big-endian length followed by that many bytes. The first message each
 * way is a Noise handshake message; after that each is a transport ciphertext whose plaintext is
 * a type byte (CONFIRM, DATA or END) and the payload.
 */
import { E2EError } from '../../errors.js';
import { ByteQueue } from '../../lib/byte-queues.js';
import { MAX_DATA_FRAME_BYTES } from '../../mux/stream.js';

/** Largest message on the inner stream (the Noise limit). */
export const MAX_E2E_MESSAGE_BYTES = 65_535;
/** Poly1305 tag. */
export const E2E_TAG_BYTES = 16;
/**
 * Largest payload of one DATA record: a whole record (length prefix, type byte, payload, tag)
 * fills exactly one mux DATA frame, so each inner record costs one outer record, not two.
 */
export const MAX_E2E_PAYLOAD_BYTES = Math.min(MAX_E2E_MESSAGE_BYTES - E2E_TAG_BYTES - 1, MAX_DATA_FRAME_BYTES - 2 - E2E_TAG_BYTES - 1);

/**
 * Record types (the first plaintext byte of a transport message). CONFIRM is the user's first
 * transport message and nothing else: it proves the user holds the ephemeral key of this msg1
 * (a replayed msg1 cannot be followed by it), so the device acts on nothing before it.
 */
export const RecordType = Object.freeze({ DATA: 0, END: 1, CONFIRM: 2 } as const);

/** The u16 length prefix of a message of `length` bytes. */
export function lengthPrefix(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > MAX_E2E_MESSAGE_BYTES) {
    throw new E2EError('ERR_E2E_RECORD', `message of ${length} bytes does not fit a u16 length`);
  }
  const out = Buffer.allocUnsafe(2);
  out.writeUInt16BE(length, 0);
  return out;
}

/**
 * Reassembles length-prefixed messages from arbitrary chunk boundaries. Holds at most one
 * partial message (64 KiB + 2 bytes) beyond what the caller takes out.
 */
export class MessageReassembler {
  readonly #queue = new ByteQueue();

  get buffered(): number {
    return this.#queue.bytes;
  }

  push(chunk: Buffer): void {
    this.#queue.push(chunk);
  }

  /** The next complete message (a view when it sits in one chunk), or undefined until one has arrived whole. */
  next(): Buffer | undefined {
    const queue = this.#queue;
    if (queue.bytes < 2) return undefined;
    const length = (queue.byteAt(0) << 8) | queue.byteAt(1);
    if (queue.bytes < 2 + length) return undefined;
    queue.take(2);
    if (length === 0) return Buffer.alloc(0);
    const parts = queue.take(length);
    const first = parts[0]!;
    return parts.length === 1 ? Buffer.from(first.buffer, first.byteOffset, first.length) : Buffer.concat(parts, length);
  }
}
