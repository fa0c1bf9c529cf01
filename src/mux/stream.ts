/**
 * MuxStream: one multiplexed, flow-controlled byte stream, as a Node.js Duplex with half-close.
 *
 *                 OPEN sent / OPEN received
 *                          |
 *                      [opening] --- OPEN_FAIL / RESET / destroy ---> [reset]
 *                          | OPEN_OK received / accept()
 *                          v
 *     FIN sent  <------- [open] -------> FIN received
 *        |                                   |
 *  [local-closed]                     [remote-closed]
 *        |  FIN received          FIN sent   |
 *        +------------> [closed] <-----------+
 *
 *  Any live state --- RESET sent or received, session gone ---> [reset]
 *
 * A FIN sent while still opening (client-speaks-first, then half-close) is remembered and the
 * stream enters 'local-closed' on OPEN_OK. 'closed' and 'reset' are terminal: the session forgets
 * the stream, though its readable side may still hold data for the application.
 */
import { Duplex } from 'node:stream';
import { MuxError } from '../errors.js';
import { ByteQueue, ReceiveQueue, own } from '../lib/byte-queues.js';
import { FRAME_HEADER_BYTES, encodeFin, encodeOpenOk, encodeReset, encodeWindowUpdate, OPEN_EARLY_CREDIT_BYTES } from './frame.js';
import { MAX_CHANNEL_MESSAGE_BYTES } from './frame-writer.js';
import { MuxStreamError, type ReasonCode } from './reason.js';
import { ReceiveWindow, SendWindow } from './window.js';

export type StreamState = 'opening' | 'open' | 'local-closed' | 'remote-closed' | 'closed' | 'reset';

/**
 * Largest DATA payload: a whole channel message less the frame header, so one frame fills one
 * secure record. Fewer, larger records win: every record costs a cipher setup, a WebSocket frame,
 * a Readable push and a socket write at the far end, whatever its size (bench/profile-notes.md).
 */
export const MAX_DATA_FRAME_BYTES = MAX_CHANNEL_MESSAGE_BYTES - FRAME_HEADER_BYTES;
/**
 * Writable high-water mark of a stream. Above one socket read (64 KiB), so that `write()` of a
 * read that goes straight out returns true: at the 16 KiB default every read would pause and
 * resume the socket feeding the stream.
 */
export const STREAM_WRITE_HIGH_WATER_BYTES = 128 * 1024;

/** What a stream needs from its session. Internal to src/mux/. */
export interface StreamHost {
  /** True while the channel is above its high-water mark. */
  readonly blocked: boolean;
  /** Sends one DATA frame of `length` bytes given as `parts`. */
  sendData(streamId: number, parts: readonly Uint8Array[], length: number): void;
  sendControl(frame: Uint8Array): void;
  /** Calls `stream._resumeWrite()` once the channel drains. */
  waitForDrain(stream: MuxStream): void;
  /** The stream reached 'closed' or 'reset'. */
  streamDone(stream: MuxStream): void;
  /** Received-but-unread bytes changed by `delta` (session-wide cap). */
  bufferedChanged(delta: number): void;
  /** False while over the session cap; the host calls `stream._retryGrant()` later. */
  canGrant(stream: MuxStream): boolean;
  /**
   * How much a window of `currentSize` may grow now (doubling at most, within the per-stream
   * ceiling and the session's budget). The stream adds it to `windowGrowth`, which the session
   * takes back when the stream is done.
   */
  growWindow(currentSize: number): number;
}

type WriteCallback = (error?: Error | null) => void;

function emitOpen(stream: MuxStream): void {
  if (!stream.destroyed) stream.emit('open');
}

function flushTail(stream: MuxStream): void {
  stream._flushTail();
}

/** A multiplexed stream. Obtain one from `MuxSession.openStream()` or `StreamRequest.accept()`. */
export class MuxStream extends Duplex {
  readonly id: number;
  /** `host:port` as sent in OPEN. */
  readonly target: string;
  /** Who sent OPEN. */
  readonly initiator: 'local' | 'remote';
  /** Date.now() when the stream was created. */
  readonly openedAt = Date.now();
  /** Bytes handed to the readable side (consumed from the window). */
  bytesRead = 0;
  /** Bytes sent in DATA frames. */
  bytesWritten = 0;
  /** @internal Receive window growth beyond the advertised window (session accounting). */
  windowGrowth = 0;

  #state: StreamState = 'opening';
  readonly #host: StreamHost;
  readonly #send: SendWindow;
  readonly #recv: ReceiveWindow;
  #finSent = false;
  #finReceived = false;
  #eofPushed = false;
  #wantRead = false;
  /** Received data waiting for the reader; allocated on first need (idle streams hold none). */
  #queue: ReceiveQueue | undefined;
  /** Written bytes not yet framed. */
  readonly #out = new ByteQueue();
  /** A write callback held until `#out` is sent (no credit, or the channel is full). */
  #wCallback: WriteCallback | undefined;
  /** `_final` waiting for `#out` to be sent before the FIN. */
  #finalCallback: WriteCallback | undefined;
  #tailFlushScheduled = false;
  #resetReason: ReasonCode | undefined;
  /** Destroyed because of the peer or the session: send nothing. */
  #silent = false;
  /** The consumer's sink cannot drain (holdCredit): no credit goes out, so the peer stalls. */
  #creditHeld = false;

  /** @internal Created by MuxSession only. */
  constructor(host: StreamHost, id: number, target: string, initiator: 'local' | 'remote', window: number, peerWindow = 0) {
    super({ allowHalfOpen: true, emitClose: true, autoDestroy: true, writableHighWaterMark: STREAM_WRITE_HIGH_WATER_BYTES });
    this.#host = host;
    this.id = id;
    this.target = target;
    this.initiator = initiator;
    if (initiator === 'local') {
      this.#recv = new ReceiveWindow(window, window);
      this.#send = new SendWindow(OPEN_EARLY_CREDIT_BYTES);
    } else {
      this.#recv = new ReceiveWindow(window, OPEN_EARLY_CREDIT_BYTES);
      this.#send = new SendWindow(peerWindow);
    }
  }

  get state(): StreamState {
    return this.#state;
  }

  /** Received bytes not yet read by the application (excluding Readable's own buffer). */
  get bufferedBytes(): number {
    return this.#queue?.bytes ?? 0;
  }

  /**
   * Withholds (true) or releases (false) receive credit: while held, no WINDOW_UPDATE is sent
   * whatever the reader takes, so the peer can have at most the window in flight beyond what the
   * consumer's sink has drained. The forwarder holds credit while the target socket's write queue
   * is above its high-water mark (docs/STREAMS.md, "Memory per key").
   */
  holdCredit(held: boolean): void {
    if (this.#creditHeld === held) return;
    this.#creditHeld = held;
    if (!held) this._retryGrant();
  }

  /** Resets the stream with `reason` (sent to the peer) and destroys it locally without an error. */
  reset(reason: ReasonCode = 'cancel'): void {
    this.#resetReason ??= reason;
    this.destroy();
  }

  #expect(what: string, ...states: StreamState[]): void {
    if (!states.includes(this.#state)) {
      throw new MuxError('ERR_MUX_STREAM_STATE', `stream ${this.id}: ${what} in state ${this.#state}`);
    }
  }

  #become(state: StreamState): void {
    this.#state = state;
    if (state === 'closed' || state === 'reset') this.#host.streamDone(this);
  }

  // --- events from the session (frames received) -------------------------------------------

  /** @internal OPEN_OK: the acceptor's window replaces the early credit. */
  _onOpenOk(window: number): void {
    this.#expect('OPEN_OK', 'opening');
    if (this.initiator !== 'local') throw new MuxError('ERR_MUX_STREAM_STATE', `stream ${this.id}: OPEN_OK for a remote stream`);
    this.#send.raiseLimitTo(Math.max(OPEN_EARLY_CREDIT_BYTES, window));
    this.#become(this.#finSent ? 'local-closed' : 'open');
    // Deferred so a throwing 'open' listener cannot be mistaken for a protocol error.
    process.nextTick(emitOpen, this);
    this._resumeWrite();
  }

  /** @internal OPEN_FAIL: the opener's stream fails with ERR_MUX_STREAM_REFUSED. */
  _onOpenFail(reason: ReasonCode, message: string): void {
    this.#expect('OPEN_FAIL', 'opening');
    if (this.initiator !== 'local') throw new MuxError('ERR_MUX_STREAM_STATE', `stream ${this.id}: OPEN_FAIL for a remote stream`);
    this.#silent = true;
    const detail = message ? `: ${message}` : '';
    this.destroy(new MuxStreamError('ERR_MUX_STREAM_REFUSED', `open ${this.target} refused (${reason})${detail}`, reason, { detail: message }));
  }

  /** @internal DATA: checked against the window, then delivered or queued. */
  _onData(payload: Uint8Array): void {
    this.#expectReceiving('DATA');
    this.#recv.receive(payload.length, this.id);
    if (this.#wantRead && this.#queue === undefined && this.#state !== 'opening') {
      this.#deliver(own(payload));
      return;
    }
    this.#enqueue(payload);
  }

  /** @internal WINDOW_UPDATE. */
  _onWindowUpdate(increment: number): void {
    this.#expect('WINDOW_UPDATE', 'open', 'local-closed', 'remote-closed');
    this.#send.grant(increment, this.id);
    this._resumeWrite();
  }

  /** @internal FIN: the readable side ends after the queued data. */
  _onFin(): void {
    this.#expectReceiving('FIN');
    this.#finReceived = true;
    if (this.#state === 'open') this.#become('remote-closed');
    else if (this.#state === 'local-closed') this.#become('closed');
    this.#drainQueue();
  }

  /** @internal RESET from the peer. `pending`: a remote open nobody has accepted yet. */
  _onReset(reason: ReasonCode): void {
    this.#silent = true;
    if (this.initiator === 'remote' && this.#state === 'opening') {
      this.destroy();
      return;
    }
    this.destroy(new MuxStreamError('ERR_MUX_STREAM_RESET', `stream ${this.id} reset by peer (${reason})`, reason));
  }

  /** @internal The session ended: fail without sending anything. */
  _abort(error: MuxStreamError): void {
    this.#silent = true;
    if (this.initiator === 'remote' && this.#state === 'opening') this.destroy();
    else this.destroy(error);
  }

  #expectReceiving(what: string): void {
    if (this.#finReceived) throw new MuxError('ERR_MUX_STREAM_STATE', `stream ${this.id}: ${what} after FIN`);
    if (this.#state === 'opening' && this.initiator === 'local') {
      throw new MuxError('ERR_MUX_STREAM_STATE', `stream ${this.id}: ${what} before OPEN_OK`);
    }
    this.#expect(what, 'opening', 'open', 'local-closed');
  }

  // --- accept (remote-initiated streams) ----------------------------------------------------

  /** @internal The acceptor says yes: OPEN_OK, then any early data reaches the reader. */
  _accept(): void {
    this.#expect('accept', 'opening');
    this.#host.sendControl(encodeOpenOk(this.id, this.#recv.size));
    this.#recv.raiseLimitTo(Math.max(OPEN_EARLY_CREDIT_BYTES, this.#recv.size));
    this.#become(this.#finReceived ? 'remote-closed' : 'open');
    this.#drainQueue();
  }

  // --- readable side ------------------------------------------------------------------------

  override _read(): void {
    this.#wantRead = true;
    this.#drainQueue();
  }

  #enqueue(payload: Uint8Array): void {
    (this.#queue ??= new ReceiveQueue()).push(payload);
    this.#host.bufferedChanged(payload.length);
  }

  #drainQueue(): void {
    if (this.#state === 'opening' || this.destroyed) return;
    const queue = this.#queue;
    if (queue !== undefined) {
      while (this.#wantRead) {
        const chunk = queue.shift();
        if (chunk === undefined) break;
        this.#host.bufferedChanged(-chunk.length);
        this.#deliver(chunk);
      }
      if (queue.bytes === 0) this.#queue = undefined;
    }
    if (this.#finReceived && this.#queue === undefined && !this.#eofPushed) {
      this.#eofPushed = true;
      this.push(null);
    }
  }

  #deliver(chunk: Uint8Array): void {
    this.bytesRead += chunk.length;
    this.#recv.consume(chunk.length);
    this.#wantRead = this.push(chunk);
    this._retryGrant();
  }

  /** @internal Sends a WINDOW_UPDATE when half the window has been read (and the session allows). */
  _retryGrant(): void {
    if (this.#creditHeld) return;
    if (this.#finReceived || this.#state === 'opening' || this.#recv.due === 0) return;
    if (this.#state === 'closed' || this.#state === 'reset') return;
    if (!this.#host.canGrant(this)) return;
    // A reader with at most half its window unread keeps up: a wider window means fewer sender
    // stalls and WINDOW_UPDATEs. A stream nobody reads never gets here (no grant is ever due).
    const extra = this.#recv.buffered <= this.#recv.size / 2 ? this.#host.growWindow(this.#recv.size) : 0;
    this.windowGrowth += extra;
    this.#host.sendControl(encodeWindowUpdate(this.id, this.#recv.takeGrant(extra)));
  }

  // --- writable side ------------------------------------------------------------------------

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    if (this.#state !== 'opening' && this.#state !== 'open' && this.#state !== 'remote-closed') {
      callback(new MuxError('ERR_MUX_STREAM_STATE', `stream ${this.id}: write in state ${this.#state}`));
      return;
    }
    this.#out.push(chunk);
    // A chunk of a frame or more is bulk: its short tail waits, until the end of this event-loop
    // turn at most, for the next chunk to fill a frame. A 64 KiB socket read then costs one record
    // rather than a full one and a sliver. Smaller chunks (interactive traffic) go out at once.
    const holdTail = chunk.length >= MAX_DATA_FRAME_BYTES;
    this.#pump(holdTail);
    if (this.#out.bytes === 0) {
      callback();
    } else if (holdTail && this.#out.bytes < MAX_DATA_FRAME_BYTES) {
      this.#scheduleTailFlush();
      callback();
    } else {
      this.#wCallback = callback; // Writable backpressure reaches the application
    }
  }

  /**
   * Frames `#out` while credit and the channel allow; with `holdTail`, a last piece smaller than a
   * frame stays queued. Stalls register for a resume (WINDOW_UPDATE, OPEN_OK or channel drain).
   */
  #pump(holdTail: boolean): void {
    while (this.#out.bytes > 0) {
      if (holdTail && this.#out.bytes < MAX_DATA_FRAME_BYTES) return;
      const credit = this.#send.available;
      if (credit === 0) return; // resumes on WINDOW_UPDATE / OPEN_OK
      if (this.#host.blocked) {
        this.#host.waitForDrain(this);
        return;
      }
      const n = Math.min(this.#out.bytes, credit, MAX_DATA_FRAME_BYTES);
      this.#send.consume(n);
      this.bytesWritten += n;
      this.#host.sendData(this.id, this.#out.take(n), n);
    }
  }

  #scheduleTailFlush(): void {
    if (this.#tailFlushScheduled) return;
    this.#tailFlushScheduled = true;
    setImmediate(flushTail, this);
  }

  /** @internal The held tail of a bulk write goes out (no further write came this turn). */
  _flushTail(): void {
    this.#tailFlushScheduled = false;
    if (!this.destroyed) this._resumeWrite();
  }

  /**
   * @internal Sends everything queued as credit and the channel allow; once all is out, releases
   * a held write callback and a pending FIN.
   */
  _resumeWrite(): void {
    this.#pump(false);
    if (this.#out.bytes > 0) return;
    const callback = this.#wCallback;
    if (callback !== undefined) {
      this.#wCallback = undefined;
      // The Writable may run its next buffered write and then _final synchronously from here:
      // that write can leave bytes in #out (a held tail, no credit) and _final then registers a
      // pending FIN, which must wait for those bytes, not go out below.
      callback();
      if (this.#out.bytes > 0) return;
    }
    const final = this.#finalCallback;
    if (final !== undefined) {
      this.#finalCallback = undefined;
      this.#sendFin(final);
    }
  }

  override _final(callback: WriteCallback): void {
    if (this.#state === 'closed' || this.#state === 'reset') {
      callback();
      return;
    }
    // A held tail goes before the FIN.
    this.#pump(false);
    if (this.#out.bytes > 0) {
      this.#finalCallback = callback;
      return;
    }
    this.#sendFin(callback);
  }

  #sendFin(callback: WriteCallback): void {
    if (this.#state === 'closed' || this.#state === 'reset') {
      callback();
      return;
    }
    this.#finSent = true;
    this.#host.sendControl(encodeFin(this.id));
    if (this.#state === 'open') this.#become('local-closed');
    else if (this.#state === 'remote-closed') this.#become('closed');
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#state !== 'closed' && this.#state !== 'reset') {
      if (!this.#silent) {
        const reason = this.#resetReason ?? (error instanceof MuxStreamError ? error.reason : error ? 'error' : 'cancel');
        this.#host.sendControl(encodeReset(this.id, reason));
      }
      this.#become('reset');
    }
    const queued = this.#queue?.bytes ?? 0;
    if (queued > 0) this.#host.bufferedChanged(-queued);
    this.#queue = undefined;
    this.#out.clear();
    this.#wCallback = undefined;
    this.#finalCallback = undefined;
    callback(error);
  }
}
