/**
 * Byte queues, as plain data structures: what a stream received and keeps for its reader
 * (ReceiveQueue), and bytes taken off the front in arbitrary amounts (ByteQueue: what a stream
 * wrote and has not framed yet, and the end-to-end stream's reassembly of length-prefixed
 * messages). Neither copies bulk data; both count their bytes.
 */

/** Received payloads smaller than this are copied into a shared buffer (bounds per-chunk overhead). */
export const COALESCE_BELOW_BYTES = 4 * 1024;
/** Size of the shared buffers small payloads are copied into. */
export const COALESCE_BUFFER_BYTES = 16 * 1024;

/** Copies a payload that would otherwise pin a much larger channel message. */
export function own(payload: Uint8Array): Uint8Array {
  return payload.byteLength * 2 < payload.buffer.byteLength ? Buffer.from(payload) : payload;
}

/**
 * Received payloads waiting for the reader, in order. Large payloads are kept as they are (views
 * of the channel message) unless that would pin a message more than twice their size; payloads
 * under 4 KiB are copied into shared 16 KiB buffers, so a peer cannot turn a window of one-byte
 * frames into a million buffers.
 */
export class ReceiveQueue {
  readonly #chunks: Uint8Array[] = [];
  #bytes = 0;
  /** The shared buffer the last chunk is a view of, while small payloads still fit in it. */
  #tail: Buffer | undefined;
  #tailUsed = 0;

  /** Bytes queued. */
  get bytes(): number {
    return this.#bytes;
  }

  push(payload: Uint8Array): void {
    const chunks = this.#chunks;
    const n = payload.length;
    if (n < COALESCE_BELOW_BYTES) {
      if (this.#tail === undefined || this.#tailUsed + n > this.#tail.length) {
        this.#tail = Buffer.allocUnsafe(COALESCE_BUFFER_BYTES);
        this.#tailUsed = 0;
        chunks.push(this.#tail.subarray(0, 0));
      }
      // The last chunk is a view of the tail buffer: extend it over the copied payload.
      const start = this.#tailUsed - chunks[chunks.length - 1]!.length;
      this.#tail.set(payload, this.#tailUsed);
      this.#tailUsed += n;
      chunks[chunks.length - 1] = this.#tail.subarray(start, this.#tailUsed);
    } else {
      this.#tail = undefined;
      chunks.push(own(payload));
    }
    this.#bytes += n;
  }

  /** The oldest chunk, removed; undefined when empty. */
  shift(): Uint8Array | undefined {
    const chunk = this.#chunks.shift();
    if (chunk === undefined) return undefined;
    if (this.#chunks.length === 0) this.#tail = undefined;
    this.#bytes -= chunk.length;
    return chunk;
  }
}

/** Bytes in order, as the chunks that were pushed; taken off the front as views, never joined. */
export class ByteQueue {
  #parts: Uint8Array[] = [];
  #bytes = 0;

  /** Bytes queued. */
  get bytes(): number {
    return this.#bytes;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#parts.push(chunk);
    this.#bytes += chunk.length;
  }

  /** The byte at `index` (0..bytes-1) without removing anything. */
  byteAt(index: number): number {
    if (!(index >= 0 && index < this.#bytes)) throw new RangeError(`byteAt(${index}) in a queue of ${this.#bytes} bytes`);
    let at = index;
    for (const part of this.#parts) {
      if (at < part.length) return part[at]!;
      at -= part.length;
    }
    throw new RangeError('unreachable');
  }

  /** Removes the first `n` bytes (1..bytes) and returns them as parts (views, no copy). */
  take(n: number): Uint8Array[] {
    if (!(n > 0 && n <= this.#bytes)) throw new RangeError(`take(${n}) from a queue of ${this.#bytes} bytes`);
    const parts = this.#parts;
    this.#bytes -= n;
    const head = parts[0]!;
    if (head.length === n) {
      parts.shift();
      return [head];
    }
    if (head.length > n) {
      parts[0] = head.subarray(n);
      return [head.subarray(0, n)];
    }
    const taken: Uint8Array[] = [];
    let need = n;
    while (need > 0) {
      const part = parts[0]!;
      if (part.length <= need) {
        taken.push(part);
        parts.shift();
        need -= part.length;
      } else {
        taken.push(part.subarray(0, need));
        parts[0] = part.subarray(need);
        need = 0;
      }
    }
    return taken;
  }

  /** Drops everything queued. */
  clear(): void {
    this.#parts = [];
    this.#bytes = 0;
  }
}
