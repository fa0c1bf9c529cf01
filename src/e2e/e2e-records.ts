/**
 * The framing of an end-to-end stream (docs/PROTOCOL.md, "Device endpoints"): every message on
 * the inner stream is a u16 big-endian length followed by that many bytes. The first message each
 * way is a Noise handshake message; after that each is a transport ciphertext whose plaintext is
 * a type byte (CONFIRM, DATA or END) and the payload.
 */
import { E2EError } from '../errors.js';
import { MAX_DATA_FRAME_BYTES } from '../mux/stream.js';

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
  #chunks: Buffer[] = [];
  #buffered = 0;

  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /** The next complete message, or undefined until one has arrived whole. */
  next(): Buffer | undefined {
    if (this.#buffered < 2) return undefined;
    const length = this.#peekLength();
    if (this.#buffered < 2 + length) return undefined;
    this.#take(2);
    return this.#take(length);
  }

  #peekLength(): number {
    const first = this.#chunks[0]!;
    if (first.length >= 2) return first.readUInt16BE(0);
    return (first[0]! << 8) | this.#chunks[1]![0]!;
  }

  /** Removes `n` bytes from the front (n <= buffered); a view when they sit in one chunk. */
  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.#chunks[0]!;
      const use = Math.min(head.length, n - filled);
      head.copy(out, filled, 0, use);
      filled += use;
      if (use === head.length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(use);
    }
    return out;
  }
}
