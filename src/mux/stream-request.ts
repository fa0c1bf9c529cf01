/**
 * A remote OPEN waiting for the application's decision. The acceptor usually dials the target
 * first and accepts only once connected, so the decision is asynchronous; meanwhile early data is
 * buffered (within OPEN_EARLY_CREDIT_BYTES) and a RESET from the opener cancels the request.
 */
import { MuxError } from '../errors.js';
import { MuxStreamError, toReasonCode, type ReasonCode } from './reason.js';
import type { MuxStream } from './stream.js';

/** What `onStreamRequest` receives. */
export interface StreamRequest {
  readonly id: number;
  /** `host:port` as the opener sent it: validate it with the access policy before dialing. */
  readonly target: string;
  /** True once the opener reset the request or the session ended. */
  readonly cancelled: boolean;
  /** Aborts on cancellation; pass it to the dialer. Created on first access. */
  readonly signal: AbortSignal;
  /** Sends OPEN_OK and returns the stream. Throws MuxStreamError 'ERR_MUX_STREAM_RESET' when cancelled. */
  accept(): MuxStream;
  /** Sends OPEN_FAIL with `reason`; a no-op once settled or cancelled. */
  reject(reason: ReasonCode, message?: string): void;
}

/** Session callbacks a pending request needs. Internal to src/mux/. */
export interface PendingOpenHost {
  accepted(request: PendingOpen): void;
  rejected(request: PendingOpen, reason: ReasonCode, message: string): void;
}

/** @internal The session's implementation of StreamRequest. */
export class PendingOpen implements StreamRequest {
  readonly stream: MuxStream;
  readonly #host: PendingOpenHost;
  #settled = false;
  #cancelReason: ReasonCode | undefined;
  #abort: AbortController | undefined;

  constructor(host: PendingOpenHost, stream: MuxStream) {
    this.#host = host;
    this.stream = stream;
  }

  get id(): number {
    return this.stream.id;
  }

  get target(): string {
    return this.stream.target;
  }

  get cancelled(): boolean {
    return this.#cancelReason !== undefined;
  }

  get signal(): AbortSignal {
    this.#abort ??= new AbortController();
    if (this.#cancelReason !== undefined && !this.#abort.signal.aborted) this.#abort.abort(this.#cancelError());
    return this.#abort.signal;
  }

  get settled(): boolean {
    return this.#settled || this.#cancelReason !== undefined;
  }

  accept(): MuxStream {
    if (this.#cancelReason !== undefined) throw this.#cancelError();
    if (this.#settled) throw new MuxError('ERR_MUX_STREAM_STATE', `stream ${this.id}: request already settled`);
    this.#settled = true;
    this.#host.accepted(this);
    return this.stream;
  }

  reject(reason: ReasonCode, message = ''): void {
    if (this.settled) return;
    const code = toReasonCode(reason);
    this.#settled = true;
    this.#host.rejected(this, code, String(message));
  }

  /** The opener reset the stream, or the session ended, before a decision. */
  cancel(reason: ReasonCode): void {
    if (this.settled) return;
    this.#cancelReason = reason;
    this.#abort?.abort(this.#cancelError());
  }

  #cancelError(): MuxStreamError {
    const reason = this.#cancelReason ?? 'cancel';
    return new MuxStreamError('ERR_MUX_STREAM_RESET', `stream ${this.id}: open cancelled (${reason})`, reason);
  }
}
