/**
 * The byte stream of `twoway connect` through a running client daemon's control socket. After the
 * answer line, both directions carry frames:
 *
 *   frame = type u8 | length u32 big-endian | payload
 *   DATA  (0): payload bytes of the stream, 1 to 1 MiB
 *   END   (1): no payload; this direction is finished (a half-close), the other may go on
 *   RESET (2): JSON {code, reason, message} of at most 4 KiB; the stream failed
 *
 * A Unix socket has no reset distinct from a clean end, and a control socket closed without END
 * or RESET is a truncation: so the tunnel's three endings (clean, half-closed, failed) stay apart
 * across the hop from the daemon to the `twoway connect` process (SECURITY.md #10).
 */
import type net from 'node:net';
import { Duplex } from 'node:stream';
import { ForwardError } from '../errors.js';
import { ByteQueue } from '../lib/byte-queues.js';
import { MuxStreamError, toReasonCode, type ReasonCode } from '../mux/reason.js';

export const ControlFrame = Object.freeze({ DATA: 0, END: 1, RESET: 2 } as const);
const HEADER_BYTES = 5;
export const MAX_CONTROL_DATA_BYTES = 1024 * 1024;
const MAX_RESET_BYTES = 4096;

function header(type: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES);
  out[0] = type;
  out.writeUInt32BE(length, 1);
  return out;
}

/** The error a RESET frame describes (its code, reason and message, each checked). */
function resetError(payload: Buffer): Error {
  let parsed: { code?: unknown; reason?: unknown; message?: unknown } = {};
  try {
    parsed = JSON.parse(payload.toString('utf8')) as typeof parsed;
  } catch {
    // A malformed RESET is still a reset.
  }
  const reason = toReasonCode(parsed.reason);
  const message = typeof parsed.message === 'string' ? parsed.message.slice(0, 1000) : `stream reset (${reason})`;
  const code = parsed.code === 'ERR_MUX_STREAM_REFUSED' ? 'ERR_MUX_STREAM_REFUSED' : 'ERR_MUX_STREAM_RESET';
  return new MuxStreamError(code, message, reason);
}

/** A Duplex over a control socket speaking the frames above. */
export class ControlStream extends Duplex {
  readonly #socket: net.Socket;
  /** Received bytes not yet parsed, as they arrived (never joined). */
  readonly #received = new ByteQueue();
  #endReceived = false;
  #endSent = false;
  #resetReceived = false;

  constructor(socket: net.Socket) {
    super({ allowHalfOpen: true });
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => {
      if (!this.#endReceived && !this.#resetReceived) this.#truncated('the control socket ended without an end of stream');
    });
    socket.on('error', (err: Error) => this.destroy(err));
    socket.on('close', () => {
      if (!this.destroyed && !(this.#endReceived && this.#endSent)) this.#truncated('the control socket closed before the stream ended');
    });
    socket.resume();
  }

  /** Resets the stream with `reason` (the peer sees a RESET frame with `cause`'s message, if any). */
  reset(reason: ReasonCode = 'cancel', cause?: Error): void {
    this.destroy(new MuxStreamError('ERR_MUX_STREAM_RESET', cause?.message ?? `stream reset (${reason})`, reason));
  }

  #truncated(message: string): void {
    this.destroy(new ForwardError('ERR_FORWARD_ABORTED', message));
  }

  #onData(chunk: Buffer): void {
    if (this.destroyed) return;
    const received = this.#received;
    received.push(chunk);
    while (received.bytes >= HEADER_BYTES && !this.destroyed) {
      const type = received.byteAt(0);
      const length = ((received.byteAt(1) << 24) | (received.byteAt(2) << 16) | (received.byteAt(3) << 8) | received.byteAt(4)) >>> 0;
      const limit = type === ControlFrame.DATA ? MAX_CONTROL_DATA_BYTES : type === ControlFrame.RESET ? MAX_RESET_BYTES : 0;
      if (type > ControlFrame.RESET || length > limit || (type === ControlFrame.DATA && length === 0) || this.#endReceived) {
        this.#truncated(this.#endReceived ? 'control stream: a frame after the end of stream' : `control stream: bad frame (type ${type}, ${length} bytes)`);
        return;
      }
      if (received.bytes < HEADER_BYTES + length) return;
      received.take(HEADER_BYTES);
      const payload = length > 0 ? received.take(length) : [];
      if (type === ControlFrame.DATA) {
        let more = true;
        for (const part of payload) more = this.push(part);
        if (!more) this.#socket.pause();
      } else if (type === ControlFrame.END) {
        this.#endReceived = true;
        this.push(null);
        this.#maybeFinish();
      } else {
        this.#resetReceived = true;
        this.destroy(resetError(Buffer.concat(payload, length)));
      }
    }
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let ok = true;
    for (let at = 0; at < chunk.length; at += MAX_CONTROL_DATA_BYTES) {
      const part = chunk.subarray(at, at + MAX_CONTROL_DATA_BYTES);
      this.#socket.write(header(ControlFrame.DATA, part.length));
      ok = this.#socket.write(part);
    }
    if (ok) callback();
    else this.#socket.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#socket.write(header(ControlFrame.END, 0));
    this.#endSent = true;
    this.#maybeFinish();
    callback();
  }

  /** Both ends carried: the socket is done. */
  #maybeFinish(): void {
    if (this.#endReceived && this.#endSent) this.#socket.end();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const socket = this.#socket;
    const clean = error === null && this.#endReceived && this.#endSent;
    if (!clean && !this.#resetReceived && socket.writable) {
      const e = error as (Error & { code?: unknown; reason?: unknown }) | null;
      const body = JSON.stringify({
        code: typeof e?.code === 'string' ? e.code : 'ERR_MUX_STREAM_RESET',
        reason: toReasonCode(e?.reason),
        message: (e?.message ?? 'stream reset').slice(0, 1000),
      });
      const payload = Buffer.from(body, 'utf8').subarray(0, MAX_RESET_BYTES);
      socket.end(Buffer.concat([header(ControlFrame.RESET, payload.length), payload]));
    } else if (!clean) {
      socket.destroy();
    }
    callback(error);
  }
}
