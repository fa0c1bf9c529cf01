/**
 * WebSocketChannel: adapts one open `ws` WebSocket to the MessageChannel seam (src/channel.ts).
 * Binary messages only: a text message, an oversized frame or any `ws` parse error closes the
 * channel with 'protocol-error'. Nothing here is authenticated; the session layer above decides
 * what a message means and trusts only its own encrypted close records.
 *
 * States: open -> closed (once; by close(), a `ws` error or the socket going away).
 */
import type { WebSocket, RawData } from 'ws';
import { DEFAULT_CHANNEL_HIGH_WATER_BYTES, type CloseReason, type MessageChannel } from '../channel.js';
import { assertNever } from '../errors.js';
import { isPooledRecord, releaseRecordBuffer } from '../crypto/record-pool.js';

/** WebSocket close status codes sent for each local close reason (RFC 6455 §7.4.1). */
function wsStatusFor(reason: CloseReason): number {
  switch (reason.code) {
    case 'normal':
    case 'replaced':
    case 'revoked':
    case 'auth-failed':
    case 'timeout':
      return 1000;
    case 'shutdown':
      return 1001;
    case 'protocol-error':
      return 1002;
    case 'transport-closed':
      return 1006;
    default:
      return assertNever(reason.code, 'close code');
  }
}

function toBytes(data: RawData): Uint8Array {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return new Uint8Array(data);
}

function concatParts(message: Uint8Array | readonly Uint8Array[]): Uint8Array {
  if (message instanceof Uint8Array) return message;
  if (message.length === 1) return message[0]!;
  return Buffer.concat(message as Uint8Array[]);
}

export interface WebSocketChannelOptions {
  /** Above this many buffered bytes `send()` returns false and onDrain fires later. */
  readonly highWaterBytes?: number;
  /** Remote address for logs ("ip:port"). */
  readonly remoteAddress: string;
}

/** A MessageChannel over an open `ws` WebSocket. Created by listen/dial, never by callers. */
export class WebSocketChannel implements MessageChannel {
  readonly remoteAddress: string;
  readonly #ws: WebSocket;
  readonly #highWater: number;
  #closed = false;
  #closeFired = false;
  #closeReason: CloseReason | undefined;
  #pending: Uint8Array[] | undefined = [];
  #onMessage: ((message: Uint8Array) => void) | undefined;
  #onDrain: () => void = () => {};
  #onClose: ((reason: CloseReason) => void) | undefined;
  readonly #afterFlush = (err?: Error | null): void => {
    // Node passes null, not undefined, on success.
    if (err != null || this.#closed) return;
    if (this.#ws.bufferedAmount <= this.#highWater) this.#onDrain();
  };

  constructor(ws: WebSocket, options: WebSocketChannelOptions) {
    this.#ws = ws;
    this.#highWater = options.highWaterBytes ?? DEFAULT_CHANNEL_HIGH_WATER_BYTES;
    this.remoteAddress = options.remoteAddress;
    ws.binaryType = 'nodebuffer';
    ws.on('message', this.#handleMessage);
    ws.on('error', this.#handleError);
    ws.on('close', this.#handleClose);
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(message: Uint8Array | readonly Uint8Array[]): boolean {
    if (this.#closed) return false;
    const bytes = concatParts(message);
    // Only a send that crosses the high-water mark pays for a completion callback: when that
    // record reaches the kernel the buffer has fallen, and onDrain can tell the layer above.
    const crossing = this.#ws.bufferedAmount + bytes.length > this.#highWater;
    if (isPooledRecord(bytes)) {
      // A pooled record buffer goes back to the pool once the socket has written it.
      this.#ws.send(bytes, (err?: Error | null) => {
        if (err == null) releaseRecordBuffer(bytes);
        if (crossing) this.#afterFlush(err);
      });
      return !crossing;
    }
    if (crossing) {
      this.#ws.send(bytes, this.#afterFlush);
      return false;
    }
    this.#ws.send(bytes);
    return true;
  }

  onMessage(handler: (message: Uint8Array) => void): void {
    this.#onMessage = handler;
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined) for (const m of pending) if (!this.#closed) handler(m);
  }

  onDrain(handler: () => void): void {
    this.#onDrain = handler;
  }

  onClose(handler: (reason: CloseReason) => void): void {
    this.#onClose = handler;
    if (this.#closed && !this.#closeFired) this.#scheduleCloseEvent();
  }

  /**
   * Closes the WebSocket. Queued messages are flushed first for orderly reasons; a
   * 'protocol-error' drops the connection at once (the peer is misbehaving).
   */
  close(reason: CloseReason = { code: 'normal' }): void {
    if (this.#closed) return;
    this.#markClosed({ ...reason, remote: false });
    if (reason.code === 'protocol-error' || reason.code === 'transport-closed') {
      this.#ws.terminate();
    } else {
      this.#ws.close(wsStatusFor(reason));
    }
  }

  readonly #handleMessage = (data: RawData, isBinary: boolean): void => {
    if (this.#closed) return;
    if (!isBinary) {
      this.close({ code: 'protocol-error', message: 'text message on a binary-only channel' });
      return;
    }
    const bytes = toBytes(data);
    if (this.#onMessage !== undefined) this.#onMessage(bytes);
    else this.#pending?.push(bytes);
  };

  readonly #handleError = (err: Error): void => {
    // SECURITY.md #3: every WebSocket has an 'error' listener. ws messages carry no secrets.
    if (this.#closed) return;
    this.#markClosed({ code: 'protocol-error', message: `websocket: ${err.message}`, remote: true });
    this.#ws.terminate();
  };

  readonly #handleClose = (status: number): void => {
    if (this.#closed) return;
    this.#markClosed({
      code: 'transport-closed',
      message: `websocket closed by peer (${status})`,
      remote: true,
    });
  };

  #markClosed(reason: CloseReason): void {
    this.#closed = true;
    this.#closeReason = reason;
    this.#pending = undefined;
    this.#scheduleCloseEvent();
  }

  #scheduleCloseEvent(): void {
    if (this.#onClose === undefined || this.#closeFired) return;
    this.#closeFired = true;
    const handler = this.#onClose;
    const reason = this.#closeReason!;
    setImmediate(() => handler(reason));
  }
}
