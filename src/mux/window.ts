/**
 * Credit-based flow control, per stream and per direction (docs/STREAMS.md, "Flow control").
 *
 * Both peers count cumulative bytes. The receiver allows `limit` bytes in total; it starts at the
 * initial credit and grows by every WINDOW_UPDATE increment. A receiver grants more only when its
 * reader has consumed at least half the window since the last grant (yamux, smux), so a reader
 * that never reads holds at most one window of buffered data.
 */
import { MuxError } from '../errors.js';
import { MAX_WINDOW_CREDIT_BYTES } from './frame.js';

/** What the local side may still send on one stream. */
export class SendWindow {
  #limit: number;
  #sent = 0;

  constructor(initialCredit: number) {
    this.#limit = initialCredit;
  }

  /** Bytes that may be sent now (never negative). */
  get available(): number {
    return Math.max(0, this.#limit - this.#sent);
  }

  /** OPEN_OK replaces the early credit with the acceptor's window; credit never shrinks. */
  raiseLimitTo(total: number): void {
    if (total > this.#limit) this.#limit = total;
  }

  /** Applies a WINDOW_UPDATE; throws ERR_MUX_BAD_FRAME when the credit would pass 2^31-1. */
  grant(increment: number, streamId: number): void {
    if (this.#limit + increment - this.#sent > MAX_WINDOW_CREDIT_BYTES) {
      throw new MuxError('ERR_MUX_BAD_FRAME', `stream ${streamId}: window update overflows the credit`);
    }
    this.#limit += increment;
  }

  consume(bytes: number): void {
    this.#sent += bytes;
  }
}

/** What the peer may still send to us on one stream, and when to grant more. */
export class ReceiveWindow {
  /** The window now: what OPEN / OPEN_OK advertised, plus any growth granted since. */
  #size: number;
  #limit: number;
  #received = 0;
  #consumed = 0;
  /** `#consumed` when credit was last granted. */
  #grantedAt = 0;

  constructor(size: number, initialCredit: number) {
    this.#size = size;
    this.#limit = initialCredit;
  }

  /** The window now: the advertised one plus any growth granted since (`takeGrant(extra)`). */
  get size(): number {
    return this.#size;
  }

  /** Received bytes the reader has not consumed yet. */
  get buffered(): number {
    return this.#received - this.#consumed;
  }

  /** On accept: the credit becomes max(early credit, window), as the opener computes it. */
  raiseLimitTo(total: number): void {
    if (total > this.#limit) this.#limit = total;
  }

  /** Records `bytes` arriving; throws ERR_MUX_WINDOW_EXCEEDED when the peer overran its credit. */
  receive(bytes: number, streamId: number): void {
    if (this.#received + bytes > this.#limit) {
      throw new MuxError(
        'ERR_MUX_WINDOW_EXCEEDED',
        `stream ${streamId}: ${this.#received + bytes - this.#grantedAt} bytes > window ${this.#limit - this.#grantedAt}`,
      );
    }
    this.#received += bytes;
  }

  /** Records the reader taking `bytes`. */
  consume(bytes: number): void {
    this.#consumed += bytes;
  }

  /** The increment due now (half a window consumed since the last grant), or 0. */
  get due(): number {
    const pending = this.#consumed - this.#grantedAt;
    return pending >= this.#size / 2 ? pending : 0;
  }

  /**
   * Commits a grant of `due` bytes and returns it (0 when nothing is due). `extra` widens the
   * window by that much from this grant on: the grant carries it, so the peer may then hold that
   * much more in flight. Only for a reader that keeps up (the caller decides).
   */
  takeGrant(extra = 0): number {
    const due = this.due;
    if (due === 0) return 0;
    this.#size += extra;
    this.#grantedAt = this.#consumed;
    this.#limit += due + extra;
    return due + extra;
  }
}
