/**
 * MuxSession: many flow-controlled streams over one MessageChannel (docs/STREAMS.md).
 *
 * Stream ids follow the role: the client opens odd ids, the server even ones, and both may open
 * streams. Ids only grow, so any id at or below the highest one seen is a closed stream: late
 * frames for it are tolerated (data) or charged to the no-data budget (control), while frames for
 * ids never opened are protocol errors. Any protocol error, an exhausted budget or an overrun
 * window sends GOAWAY and closes the channel with 'protocol-error' (SECURITY.md #9, #14).
 */
import type { CloseCode, CloseReason, MessageChannel } from '../channel.js';
import { InputError, MuxError, assertNever, type MuxErrorCode } from '../errors.js';
import { EVENTS } from '../log/events.js';
import { FrameDecoder } from './frame-decoder.js';
import { FrameWriter } from './frame-writer.js';
import { MAX_STREAM_ID, encodeGoAway, encodeOpen, encodeOpenFail, encodeSettings, isWireTarget, type Frame, type MuxSettings } from './frame.js';
import { DEFAULT_MUX_LIMITS, resolveMuxLimits, type MuxLimits } from './mux-limits.js';
import { MuxStreamError, type GoAwayCode } from './reason.js';
import { PendingOpen, type PendingOpenHost, type StreamRequest } from './stream-request.js';
import { MuxStream, type StreamHost } from './stream.js';
import type { Clock } from '../lib/clock.js';
import { TokenBucket } from '../lib/token-bucket.js';

/** The subset of a pino logger the mux uses. */
export interface MuxLogger {
  debug(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface MuxSessionOptions {
  readonly role: 'client' | 'server';
  readonly limits?: Partial<MuxLimits>;
  readonly logger?: MuxLogger;
  /** Decides remote opens; without it every remote open is refused with `not-permitted`. */
  readonly onStreamRequest?: (request: StreamRequest) => void;
  /** Monotonic milliseconds for the rate limits (tests). */
  readonly clock?: Clock;
  /**
   * Sends SETTINGS first: this side's limits on remote opens, so the peer can pace its opens.
   * `maxStreams` lowers the advertised stream cap (the server's per-key cap). Only for a peer
   * that said it understands SETTINGS (docs/STREAMS.md, "SETTINGS").
   */
  readonly advertise?: { readonly maxStreams?: number };
}

/** The peer's limits on our opens: what its SETTINGS said, else the defaults. */
export type PeerOpenLimits = Required<MuxSettings>;

/** Why the session ended. */
export interface MuxCloseInfo {
  /** The GOAWAY code, or 'tunnel-closed' when the channel went away without one. */
  readonly code: GoAwayCode | 'tunnel-closed';
  readonly remote: boolean;
  readonly message?: string;
  /** The local protocol error that ended the session, if any. */
  readonly error?: MuxError;
}

export interface MuxStats {
  streamsOpened: number;
  streamsAccepted: number;
  streamsRefused: number;
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
}

const GOAWAY_CLOSE: Readonly<Record<GoAwayCode, CloseCode>> = {
  normal: 'normal',
  shutdown: 'shutdown',
  'protocol-error': 'protocol-error',
  flood: 'protocol-error',
  error: 'protocol-error',
};

/** A multiplexer over one MessageChannel. */
export class MuxSession {
  readonly role: 'client' | 'server';
  readonly limits: MuxLimits;
  readonly stats: MuxStats = {
    streamsOpened: 0,
    streamsAccepted: 0,
    streamsRefused: 0,
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
  };

  readonly #channel: MessageChannel;
  readonly #logger: MuxLogger | undefined;
  readonly #onStreamRequest: ((request: StreamRequest) => void) | undefined;
  readonly #decoder = new FrameDecoder();
  readonly #streams = new Map<number, MuxStream>();
  readonly #pending = new Map<number, PendingOpen>();
  readonly #openBucket: TokenBucket;
  readonly #idleBucket: TokenBucket;
  readonly #host: StreamHost;
  readonly #pendingHost: PendingOpenHost;
  #nextLocalId: number;
  #lastRemoteId = 0;
  readonly #writer: FrameWriter;
  #buffered = 0;
  /** Window growth of live streams, summed (bounded by maxSessionBufferedBytes). */
  #windowGrowth = 0;
  readonly #maxWindow: number;
  readonly #deferredGrants = new Set<MuxStream>();
  #closeInfo: MuxCloseInfo | undefined;
  #closeHandlers: Array<(info: MuxCloseInfo) => void> = [];
  #peerLimits: PeerOpenLimits = {
    maxStreams: DEFAULT_MUX_LIMITS.maxStreams,
    openRatePerSecond: DEFAULT_MUX_LIMITS.openRatePerSecond,
    openBurst: DEFAULT_MUX_LIMITS.openBurst,
    maxPendingOpens: DEFAULT_MUX_LIMITS.maxPendingOpens,
  };
  #settingsReceived = 0;

  constructor(channel: MessageChannel, options: MuxSessionOptions) {
    if (options.role !== 'client' && options.role !== 'server') {
      throw new InputError('ERR_INVALID_ARG', `mux role: expected 'client' or 'server', got ${String(options.role)}`);
    }
    this.role = options.role;
    this.limits = resolveMuxLimits(options.limits);
    this.#maxWindow = Math.max(this.limits.streamWindowBytes, this.limits.maxStreamWindowBytes);
    this.#channel = channel;
    this.#writer = new FrameWriter(channel, this.stats);
    this.#logger = options.logger;
    this.#onStreamRequest = options.onStreamRequest;
    this.#nextLocalId = this.role === 'client' ? 1 : 2;
    this.#openBucket = new TokenBucket(this.limits.openRatePerSecond, this.limits.openBurst, options.clock);
    this.#idleBucket = new TokenBucket(this.limits.idleFramesPerSecond, this.limits.idleFrameBurst, options.clock);
    this.#host = this.#makeStreamHost();
    this.#pendingHost = {
      accepted: (request) => {
        this.#pending.delete(request.id);
        this.stats.streamsAccepted++;
        request.stream._accept();
      },
      rejected: (request, reason, message) => {
        this.#pending.delete(request.id);
        this.stats.streamsRefused++;
        request.stream._abort(new MuxStreamError('ERR_MUX_STREAM_REFUSED', 'rejected', reason));
        this.#sendControl(encodeOpenFail(request.id, reason, message));
      },
    };
    if (options.advertise !== undefined) {
      const cap = options.advertise.maxStreams;
      this.#sendControl(
        encodeSettings({
          maxStreams: cap === undefined ? this.limits.maxStreams : Math.max(1, Math.min(cap, this.limits.maxStreams)),
          openRatePerSecond: this.limits.openRatePerSecond,
          openBurst: this.limits.openBurst,
          maxPendingOpens: this.limits.maxPendingOpens,
        }),
      );
    }
    channel.onMessage((message) => this.#onMessage(message));
    channel.onDrain(() => this.#writer.onDrain());
    channel.onClose((reason) => this.#onChannelClose(reason));
  }

  /** Live streams (opening, open or half-closed). */
  get streamCount(): number {
    return this.#streams.size;
  }

  get closed(): boolean {
    return this.#closeInfo !== undefined;
  }

  /** The peer's limits on our opens (its SETTINGS, else the documented defaults). */
  get peerLimits(): PeerOpenLimits {
    return this.#peerLimits;
  }

  /** True once the peer sent SETTINGS. */
  get peerSentSettings(): boolean {
    return this.#settingsReceived > 0;
  }

  /** Runs `handler` once when the session ends (at once, asynchronously, if it already has). */
  onClose(handler: (info: MuxCloseInfo) => void): void {
    const info = this.#closeInfo;
    if (info !== undefined) queueMicrotask(() => handler(info));
    else this.#closeHandlers.push(handler);
  }

  /**
   * Opens a stream to `target` (`host:port`). Returns at once; data written now is sent within the
   * early credit. The stream emits 'open' when accepted, or fails with ERR_MUX_STREAM_REFUSED,
   * ERR_MUX_STREAM_LIMIT or ERR_MUX_CLOSED. Throws InputError for a malformed target.
   */
  openStream(target: string): MuxStream {
    if (!isWireTarget(target)) {
      throw new InputError('ERR_INVALID_ARG', 'stream target: expected 1..512 printable ASCII bytes (host:port)');
    }
    const id = this.#nextLocalId;
    let failure: MuxStreamError | undefined;
    if (this.closed) failure = new MuxStreamError('ERR_MUX_CLOSED', 'mux session is closed', 'tunnel-closed');
    else if (this.#streams.size >= this.limits.maxStreams || id > MAX_STREAM_ID) {
      failure = new MuxStreamError('ERR_MUX_STREAM_LIMIT', `at most ${this.limits.maxStreams} streams`, 'limit');
    }
    const stream = new MuxStream(this.#host, failure ? 0 : id, target, 'local', this.limits.streamWindowBytes);
    if (failure) {
      stream._abort(failure);
      return stream;
    }
    this.#nextLocalId += 2;
    this.#streams.set(id, stream);
    this.stats.streamsOpened++;
    this.#sendControl(encodeOpen(id, this.limits.streamWindowBytes, target));
    return stream;
  }

  /** Sends GOAWAY, destroys every stream with ERR_MUX_CLOSED and closes the channel. */
  close(code: GoAwayCode = 'normal', message = ''): void {
    if (this.closed) return;
    this.#sendControl(encodeGoAway(code, message));
    this.#writer.flush();
    this.#terminate({ code, remote: false, ...(message ? { message } : {}) });
    this.#closeChannel({ code: GOAWAY_CLOSE[code], ...(message ? { message } : {}) });
  }

  // --- sending ------------------------------------------------------------------------------

  #makeStreamHost(): StreamHost {
    const writer = this.#writer;
    return {
      get blocked() {
        return writer.blocked;
      },
      sendData: (streamId, parts, length) => writer.sendData(streamId, parts, length),
      sendControl: (frame) => writer.sendControl(frame),
      waitForDrain: (stream) => writer.waitForDrain(stream),
      streamDone: (stream) => this.#streamDone(stream),
      bufferedChanged: (delta) => this.#bufferedChanged(delta),
      canGrant: (stream) => {
        if (this.#buffered <= this.limits.maxSessionBufferedBytes) return true;
        this.#deferredGrants.add(stream);
        return false;
      },
      growWindow: (currentSize) => {
        const room = this.limits.maxSessionBufferedBytes - this.#windowGrowth;
        const extra = Math.max(0, Math.min(currentSize, this.#maxWindow - currentSize, room));
        this.#windowGrowth += extra;
        return extra;
      },
    };
  }

  #sendControl(frame: Uint8Array): void {
    this.#writer.sendControl(frame);
  }

  #bufferedChanged(delta: number): void {
    this.#buffered += delta;
    if (delta < 0 && this.#deferredGrants.size > 0 && this.#buffered <= this.limits.maxSessionBufferedBytes) {
      for (const stream of this.#deferredGrants) {
        this.#deferredGrants.delete(stream);
        stream._retryGrant();
      }
    }
  }

  #streamDone(stream: MuxStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    this.#windowGrowth -= stream.windowGrowth;
    stream.windowGrowth = 0;
    this.#writer.forget(stream);
    this.#deferredGrants.delete(stream);
    const request = this.#pending.get(stream.id);
    if (request !== undefined) {
      this.#pending.delete(stream.id);
      request.cancel(this.closed ? 'tunnel-closed' : 'cancel');
    }
  }

  // --- receiving ----------------------------------------------------------------------------

  #onMessage(message: Uint8Array): void {
    if (this.closed) return;
    this.stats.bytesReceived += message.length;
    try {
      for (const frame of this.#decoder.push(message)) {
        this.stats.framesReceived++;
        this.#dispatch(frame);
        if (this.closed) return;
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  #dispatch(frame: Frame): void {
    if (frame.type === 'goaway') {
      this.#logger?.debug({ code: frame.code, message: frame.message }, 'mux: peer sent GOAWAY');
      this.#terminate({ code: frame.code, remote: true, ...(frame.message ? { message: frame.message } : {}) });
      // The peer ended the session: its code and message, not ours, are what the session logs.
      this.#closeChannel({ code: GOAWAY_CLOSE[frame.code], remote: true, ...(frame.message ? { message: frame.message } : {}) });
      return;
    }
    if (frame.type === 'open') {
      this.#onOpen(frame.streamId, frame.window, frame.target);
      return;
    }
    if (frame.type === 'settings') {
      // The first is expected; any later one costs work and carries no data.
      if (this.#settingsReceived++ > 0) this.#charge('repeated SETTINGS');
      this.#peerLimits = Object.freeze({ ...this.#peerLimits, ...frame.settings });
      this.#logger?.debug({ settings: this.#peerLimits }, 'mux: peer sent SETTINGS');
      return;
    }
    const stream = this.#streams.get(frame.streamId);
    if (stream === undefined) {
      this.#onClosedStreamFrame(frame);
      return;
    }
    switch (frame.type) {
      case 'open-ok':
        stream._onOpenOk(frame.window);
        return;
      case 'open-fail':
        stream._onOpenFail(frame.reason, frame.message);
        return;
      case 'data':
        stream._onData(frame.payload);
        return;
      case 'window-update':
        if (frame.increment === 0) this.#charge('zero WINDOW_UPDATE');
        stream._onWindowUpdate(frame.increment);
        return;
      case 'fin':
        stream._onFin();
        return;
      case 'reset':
        // Open-then-reset before any answer is HTTP/2 Rapid Reset: the work was ours, not theirs.
        if (this.#pending.has(frame.streamId)) this.#charge('RESET of a pending open');
        stream._onReset(frame.reason);
        return;
      default:
        assertNever(frame, 'frame');
    }
  }

  #onOpen(id: number, window: number, target: string): void {
    const remoteParity = this.role === 'client' ? 0 : 1;
    if (id % 2 !== remoteParity) throw new MuxError('ERR_MUX_BAD_FRAME', `OPEN with local-parity id ${id}`);
    if (id <= this.#lastRemoteId) throw new MuxError('ERR_MUX_BAD_FRAME', `OPEN reuses id ${id}`);
    this.#lastRemoteId = id;
    let refusal: string | undefined;
    if (this.#streams.size >= this.limits.maxStreams) refusal = 'too many streams';
    else if (this.#pending.size >= this.limits.maxPendingOpens) refusal = 'too many pending opens';
    else if (!this.#openBucket.take()) refusal = 'open rate limit';
    if (refusal !== undefined) {
      this.#logger?.debug({ stream: id, refusal }, 'mux: refused a remote open');
      this.stats.streamsRefused++;
      this.#sendControl(encodeOpenFail(id, 'limit', refusal));
      this.#charge('refused OPEN', 'ERR_MUX_OPEN_RATE');
      return;
    }
    const stream = new MuxStream(this.#host, id, target, 'remote', this.limits.streamWindowBytes, window);
    this.#streams.set(id, stream);
    const request = new PendingOpen(this.#pendingHost, stream);
    this.#pending.set(id, request);
    if (this.#onStreamRequest === undefined) {
      request.reject('not-permitted');
      return;
    }
    try {
      this.#onStreamRequest(request);
    } catch (err) {
      this.#logger?.warn({ event: EVENTS.internalError, err, stream: id }, 'mux: onStreamRequest threw; refusing the stream');
      request.reject('error');
    }
  }

  /** A frame for an id with no live stream: tolerated if the id was used, else a protocol error. */
  #onClosedStreamFrame(frame: Exclude<Frame, { type: 'goaway' } | { type: 'open' } | { type: 'settings' }>): void {
    const id = frame.streamId;
    const local = id % 2 === (this.role === 'client' ? 1 : 0);
    const used = local ? id < this.#nextLocalId : id <= this.#lastRemoteId;
    if (!used) throw new MuxError('ERR_MUX_STREAM_STATE', `${frame.type} for stream ${id}, which was never opened`);
    // Data in flight when we reset or refused the stream carries payload the peer paid for.
    if (frame.type !== 'data') this.#charge(`${frame.type} for closed stream`);
  }

  /** Spends one token of the no-data frame budget; ends the session when it is exhausted. */
  #charge(what: string, code: MuxErrorCode = 'ERR_MUX_FLOOD'): void {
    if (!this.#idleBucket.take()) throw new MuxError(code, `peer exceeded the no-data frame budget (${what})`);
  }

  // --- ending -------------------------------------------------------------------------------

  #fail(err: unknown): void {
    if (this.closed) return;
    const error = err instanceof MuxError ? err : new MuxError('ERR_MUX_BAD_FRAME', 'internal error handling a frame', { cause: err });
    const flood = error.code === 'ERR_MUX_FLOOD' || error.code === 'ERR_MUX_OPEN_RATE';
    const code: GoAwayCode = flood ? 'flood' : err instanceof MuxError ? 'protocol-error' : 'error';
    this.#logger?.warn({ event: EVENTS.muxFailed, code: error.code, err: error.message }, 'mux: ending session');
    this.#sendControl(encodeGoAway(code));
    this.#writer.flush();
    this.#terminate({ code, remote: false, message: error.message, error });
    this.#closeChannel({ code: 'protocol-error', message: error.message });
  }

  /**
   * Closes the channel after the current task's synchronous work: a close issued while the channel
   * is still delivering a batch of messages must not overtake the GOAWAY just sent (the in-memory
   * pair drops a closer's queued messages in that case).
   */
  #closeChannel(reason: CloseReason): void {
    queueMicrotask(() => this.#channel.close(reason));
  }

  #onChannelClose(reason: CloseReason): void {
    if (this.closed) return;
    this.#terminate({ code: 'tunnel-closed', remote: reason.remote ?? true, message: reason.message ?? reason.code });
  }

  #terminate(info: MuxCloseInfo): void {
    if (this.#closeInfo !== undefined) return;
    this.#closeInfo = info;
    this.#writer.stop();
    const detail = info.message ? `: ${info.message}` : '';
    const error = new MuxStreamError('ERR_MUX_CLOSED', `mux session ended (${info.code}${detail})`, 'tunnel-closed', {
      cause: info.error,
    });
    const streams = [...this.#streams.values()];
    for (const stream of streams) stream._abort(error);
    this.#streams.clear();
    this.#pending.clear();
    this.#deferredGrants.clear();
    const handlers = this.#closeHandlers;
    this.#closeHandlers = [];
    for (const handler of handlers) {
      try {
        handler(info);
      } catch (err) {
        this.#logger?.warn({ event: EVENTS.internalError, err }, 'mux: onClose handler threw');
      }
    }
  }
}
