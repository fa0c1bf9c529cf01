/**
 * Bounds the dials one session has in flight (SECURITY.md defaults: 16 per session), so a peer
 * cannot make the server hold thousands of half-open connects or DNS lookups at once. Further
 * dials wait in a bounded FIFO queue; beyond it they are refused with reason 'limit'.
 */
import { DialError } from './dial-target.js';

/** Dials in flight per session. */
export const DEFAULT_DIALS_IN_FLIGHT = 16;
/** Dials waiting for a slot per session; the mux's cap on pending opens is usually lower. */
export const DEFAULT_DIALS_QUEUED = 256;

export interface DialLimiterOptions {
  readonly maxInFlight?: number;
  readonly maxQueued?: number;
}

interface Waiter {
  readonly grant: () => void;
  readonly fail: (err: DialError) => void;
}

/** A counting semaphore for dials with a bounded queue and cancellation. */
export class DialLimiter {
  readonly maxInFlight: number;
  readonly maxQueued: number;
  #inFlight = 0;
  readonly #queue: Waiter[] = [];

  constructor(options: DialLimiterOptions = {}) {
    this.maxInFlight = options.maxInFlight ?? DEFAULT_DIALS_IN_FLIGHT;
    this.maxQueued = options.maxQueued ?? DEFAULT_DIALS_QUEUED;
    if (!Number.isInteger(this.maxInFlight) || this.maxInFlight < 1) throw new RangeError('maxInFlight: expected an integer >= 1');
    if (!Number.isInteger(this.maxQueued) || this.maxQueued < 0) throw new RangeError('maxQueued: expected an integer >= 0');
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Runs `dial` once a slot is free; the slot is released when its promise settles. Rejects with
   * DialError reason 'limit' when the queue is full, 'cancel' when `signal` aborts while waiting.
   */
  async run<T>(dial: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.#acquire(signal);
    try {
      return await dial();
    } finally {
      this.#release();
    }
  }

  #acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new DialError('ERR_DIAL_LIMIT', 'cancel', 'dial cancelled while waiting for a slot'));
    if (this.#inFlight < this.maxInFlight) {
      this.#inFlight++;
      return Promise.resolve();
    }
    if (this.#queue.length >= this.maxQueued) {
      return Promise.reject(new DialError('ERR_DIAL_LIMIT', 'limit', `too many dials: ${this.maxInFlight} in flight and ${this.maxQueued} waiting`));
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(new DialError('ERR_DIAL_LIMIT', 'cancel', 'dial cancelled while waiting for a slot'));
      };
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        fail: reject,
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #release(): void {
    const next = this.#queue.shift();
    // The slot passes straight to the next waiter: the count stays the same.
    if (next) next.grant();
    else this.#inFlight--;
  }

  /** Refuses every waiting dial (session closing); dials in flight finish or are cancelled by their signal. */
  clear(): void {
    for (const w of this.#queue.splice(0)) w.fail(new DialError('ERR_DIAL_LIMIT', 'tunnel-closed', 'session closed'));
  }
}
