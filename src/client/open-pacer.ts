/**
 * The client's own pacing of its stream opens (docs/STREAMS.md, "Pacing opens"). The server
 * refuses opens beyond its open rate, stream cap and pending-open cap, and every refusal spends the
 * budget whose exhaustion ends the session; a browser behind the SOCKS5 listener opening 300
 * connections at once would lose its session to its own burst. So the client keeps within what
 * the server's SETTINGS advertised (the defaults until they arrive): an open goes out at once
 * while it fits, otherwise it waits here, first in first out, in a bounded queue and for at most
 * `waitMs`, and then gets a clear local refusal (reason `limit`).
 */
import { monotonicMs, type Clock } from '../lib/clock.js';
import { MuxStreamError } from '../mux/reason.js';
import type { MuxSession } from '../mux/session.js';
import type { MuxStream } from '../mux/stream.js';

function ignore(): void {}

/** Opens waiting at once per session; beyond, an open is refused locally at once. */
export const MAX_QUEUED_OPENS = 4_096;
/** When the queue waits on streams it did not open itself (remote opens), look again this often. */
const RECHECK_MS = 100;

interface QueuedOpen {
  readonly target: string;
  readonly deadline: number;
  resolve(stream: MuxStream): void;
  reject(err: Error): void;
}

export interface OpenPacerOptions {
  /** How long an open may wait for its turn. */
  readonly waitMs: number;
  readonly maxQueued?: number;
  /** Monotonic milliseconds (tests). */
  readonly clock?: Clock;
}

/** A pending open: its stream once sent, and a way to give up while it waits. */
export interface PacedOpen {
  readonly stream: Promise<MuxStream>;
  cancel(): void;
}

export class OpenPacer {
  readonly mux: MuxSession;
  readonly #waitMs: number;
  readonly #maxQueued: number;
  readonly #clock: Clock;
  readonly #queue: QueuedOpen[] = [];
  /** Opens sent and not yet answered (the server counts them as pending). */
  #unanswered = 0;
  #tokens: number;
  #at: number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The server answered one of our opens: had it sent SETTINGS, they would have come first. */
  #answered = false;

  constructor(mux: MuxSession, options: OpenPacerOptions) {
    this.mux = mux;
    this.#waitMs = options.waitMs;
    this.#maxQueued = options.maxQueued ?? MAX_QUEUED_OPENS;
    this.#clock = options.clock ?? monotonicMs;
    this.#tokens = this.#burst();
    this.#at = this.#clock();
    mux.onClose(() => this.close());
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Opens `target` now if it fits the server's limits, else undefined (use `open`). */
  tryOpen(target: string): MuxStream | undefined {
    if (this.#closed || this.#queue.length > 0 || !this.#fits()) return undefined;
    return this.#send(target);
  }

  /** Opens `target` as soon as it fits, within `waitMs`. */
  open(target: string): PacedOpen {
    const now = this.tryOpen(target);
    if (now !== undefined) return { stream: Promise.resolve(now), cancel: () => {} };
    if (this.#closed) return { stream: Promise.reject(this.#closedError()), cancel: () => {} };
    if (this.#queue.length >= this.#maxQueued) {
      const err = new MuxStreamError('ERR_MUX_STREAM_REFUSED', `open queue full: ${this.#maxQueued} opens already wait for the server's open rate`, 'limit');
      return { stream: Promise.reject(err), cancel: () => {} };
    }
    let entry!: QueuedOpen;
    const stream = new Promise<MuxStream>((resolve, reject) => {
      entry = { target, deadline: this.#clock() + this.#waitMs, resolve, reject };
    });
    this.#queue.push(entry);
    this.#schedule();
    return {
      stream,
      cancel: () => {
        const i = this.#queue.indexOf(entry);
        if (i !== -1) this.#queue.splice(i, 1);
      },
    };
  }

  /** The session ended: every waiting open fails with `tunnel-closed`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const entry of this.#queue.splice(0)) entry.reject(this.#closedError());
  }

  // --- pacing -------------------------------------------------------------------------------

  /**
   * Half the advertised burst: what the server's bucket holds when our opens reach it is at least
   * what ours holds when they leave, unless its reading stalls and they arrive bunched; the other
   * half absorbs that.
   */
  #burst(): number {
    return Math.max(1, Math.floor(this.mux.peerLimits.openBurst / 2));
  }

  #refill(): void {
    const now = this.#clock();
    const rate = this.mux.peerLimits.openRatePerSecond / 1000;
    this.#tokens = Math.min(this.#burst(), this.#tokens + (now - this.#at) * rate);
    this.#at = now;
  }

  /** Streams the session may hold: the server's cap, and our own (openStream refuses beyond it). */
  #maxStreams(): number {
    return Math.min(this.mux.peerLimits.maxStreams, this.mux.limits.maxStreams);
  }

  /**
   * Until SETTINGS or a first answer arrives, one open at a time: the server sends SETTINGS
   * before anything else, so the first answer tells whether the limits are the defaults.
   */
  #maxUnanswered(): number {
    return this.mux.peerSentSettings || this.#answered ? this.mux.peerLimits.maxPendingOpens : 1;
  }

  #fits(): boolean {
    if (this.mux.streamCount >= this.#maxStreams() || this.#unanswered >= this.#maxUnanswered()) return false;
    this.#refill();
    return this.#tokens >= 1;
  }

  #send(target: string): MuxStream {
    this.#tokens -= 1;
    const stream = this.mux.openStream(target);
    if (stream.destroyed) return stream;
    this.#unanswered++;
    let answered = false;
    const settle = (): void => {
      if (!answered) {
        answered = true;
        this.#unanswered--;
      }
      this.#drain();
    };
    stream.once('open', () => {
      this.#answered = true;
      settle();
    });
    stream.once('error', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_MUX_STREAM_REFUSED') this.#answered = true;
    });
    stream.once('close', settle);
    return stream;
  }

  /** Sends what fits, fails what waited too long, and arms the next wake-up. */
  #drain(): void {
    if (this.#closed) return;
    const now = this.#clock();
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      if (head.deadline <= now) {
        this.#queue.shift();
        head.reject(
          new MuxStreamError(
            'ERR_MUX_STREAM_REFUSED',
            `open of ${head.target} waited ${this.#waitMs} ms for the server's open limits (open_queue_wait_ms)`,
            'limit',
          ),
        );
        continue;
      }
      if (!this.#fits()) break;
      this.#queue.shift();
      const stream = this.#send(head.target);
      // The waiter attaches its listeners a tick later: an error before then is its to report
      // (DeferredStream reads `errored`), not an uncaught one.
      stream.on('error', ignore);
      head.resolve(stream);
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed || this.#queue.length === 0) return;
    const limits = this.mux.peerLimits;
    let delay = RECHECK_MS;
    if (this.mux.streamCount < this.#maxStreams() && this.#unanswered < this.#maxUnanswered()) {
      // Waiting on the rate only: wake when the next token is due.
      this.#refill();
      delay = Math.min(delay, Math.max(1, Math.ceil((1 - this.#tokens) / (limits.openRatePerSecond / 1000))));
    }
    delay = Math.max(1, Math.min(delay, Math.ceil(this.#queue[0]!.deadline - this.#clock())));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#drain();
    }, delay);
    this.#timer.unref();
  }

  #closedError(): MuxStreamError {
    return new MuxStreamError('ERR_MUX_STREAM_REFUSED', 'the tunnel went down while the open waited for its turn', 'tunnel-closed');
  }
}
