/**
 * MessageChannel: the one seam between layers. A reliable, ordered, message-preserving,
 * bidirectional pipe. The transport adapts a WebSocket to it; the secure session consumes one
 * (ciphertext) and offers one (plaintext) to the multiplexer above. Every layer can therefore be
 * tested over the in-memory pair below and over a real WebSocket with the same suite.
 *
 * Contract:
 * - `send()` queues one message (the parts are concatenated into one message). It returns false
 *   when `bufferedAmount` is above the channel's high-water mark; the caller should stop sending
 *   until the `onDrain` handler runs. Sending after close is a no-op that returns false.
 * - Messages are delivered to the `onMessage` handler asynchronously, in order, never
 *   re-entrantly from `send()`. A handler may keep the Uint8Array it is given.
 * - `onClose` runs exactly once, asynchronously, with the reason of whichever side closed first.
 * - Handlers are set once (the last call wins); set them before the first message can arrive.
 */

export type CloseCode =
  | 'normal' // orderly close by the application
  | 'shutdown' // the daemon is stopping
  | 'revoked' // the peer's key was removed or revoked
  | 'auth-failed' // handshake refused (never sent to an unauthenticated peer in detail)
  | 'protocol-error' // malformed or unexpected message, failed decryption
  | 'timeout' // handshake deadline or keepalive expired
  | 'replaced' // a newer session of the same key took over
  | 'transport-closed'; // the underlying connection went away without a close

export interface CloseReason {
  readonly code: CloseCode;
  /** Operator-facing detail; never secret material. */
  readonly message?: string;
  /** True when the close was initiated by the remote side. */
  readonly remote?: boolean;
}

export interface MessageChannel {
  send(message: Uint8Array | readonly Uint8Array[]): boolean;
  /** Bytes queued but not yet handed to the operating system (or the peer, in memory). */
  readonly bufferedAmount: number;
  readonly closed: boolean;
  onMessage(handler: (message: Uint8Array) => void): void;
  onDrain(handler: () => void): void;
  onClose(handler: (reason: CloseReason) => void): void;
  close(reason?: CloseReason): void;
}

export const DEFAULT_CHANNEL_HIGH_WATER_BYTES = 1024 * 1024;

function concatParts(message: Uint8Array | readonly Uint8Array[]): Uint8Array {
  if (message instanceof Uint8Array) return message;
  if (message.length === 1) return message[0]!;
  let total = 0;
  for (const part of message) total += part.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of message) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * One end of an in-memory pair. Delivery is asynchronous (setImmediate batches), and the sender's
 * bufferedAmount counts bytes the receiver has not yet been handed, so backpressure is real.
 */
class MemoryEnd implements MessageChannel {
  peer!: MemoryEnd;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #scheduled = false;
  #closed = false;
  #closeReason: CloseReason | undefined;
  #onMessage: (message: Uint8Array) => void = () => {};
  #onDrain: () => void = () => {};
  #onClose: (reason: CloseReason) => void = () => {};
  readonly #highWater: number;

  constructor(highWater: number) {
    this.#highWater = highWater;
  }

  get bufferedAmount(): number {
    return this.#queued;
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(message: Uint8Array | readonly Uint8Array[]): boolean {
    if (this.#closed) return false;
    const bytes = concatParts(message);
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    this.#schedule();
    return this.#queued <= this.#highWater;
  }

  onMessage(handler: (message: Uint8Array) => void): void {
    this.#onMessage = handler;
  }

  onDrain(handler: () => void): void {
    this.#onDrain = handler;
  }

  onClose(handler: (reason: CloseReason) => void): void {
    this.#onClose = handler;
  }

  close(reason: CloseReason = { code: 'normal' }): void {
    if (this.#closed) return;
    this.#shut({ ...reason, remote: false });
    this.peer.#shut({ ...reason, remote: true });
  }

  #shut(reason: CloseReason): void {
    this.#closed = true;
    this.#closeReason = reason;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    const wasAbove = this.#queued > this.#highWater;
    this.#queued = 0;
    // Messages queued before a close are still delivered: a close follows its data, as on a socket.
    for (const message of batch) this.peer.#onMessage(message);
    if (wasAbove && !this.#closed) this.#onDrain();
    if (this.#closeReason !== undefined) {
      // Whatever the peer sent before the close reaches this end first, as on a socket.
      const pending = this.peer.#queue;
      this.peer.#queue = [];
      this.peer.#queued = 0;
      for (const message of pending) this.#onMessage(message);
      const reason = this.#closeReason;
      this.#closeReason = undefined;
      this.#onMessage = () => {};
      this.#onClose(reason);
    }
  }
}

/** Creates two connected in-memory channels (for tests and in-process composition). */
export function createChannelPair(highWaterBytes = DEFAULT_CHANNEL_HIGH_WATER_BYTES): [MessageChannel, MessageChannel] {
  const a = new MemoryEnd(highWaterBytes);
  const b = new MemoryEnd(highWaterBytes);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
