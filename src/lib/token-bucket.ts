/**
 * A token bucket driven by a monotonic clock read on demand: no timers, so nothing to clear.
 * The one bucket of the code base: stream opens and no-data frames (mux), handshake admission
 * (session), device opens and reverse-listener accepts (device).
 */
import { monotonicMs, type Clock } from './clock.js';

/** `ratePerSecond` tokens refill continuously up to `burst`; `take()` spends them. */
export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #at: number;

  constructor(ratePerSecond: number, burst: number, clock: Clock = monotonicMs) {
    this.#ratePerMs = ratePerSecond / 1000;
    this.#burst = burst;
    this.#clock = clock;
    this.#tokens = burst;
    this.#at = clock();
  }

  /** Spends `cost` tokens and returns true, or returns false (spending nothing) when short. */
  take(cost = 1): boolean {
    const now = this.#clock();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#ratePerMs);
    this.#at = now;
    if (this.#tokens < cost) return false;
    this.#tokens -= cost;
    return true;
  }

  /** Gives back `cost` tokens taken for work that turned out to be someone else's to pay for. */
  refund(cost = 1): void {
    this.#tokens = Math.min(this.#burst, this.#tokens + cost);
  }
}
