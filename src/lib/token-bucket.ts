/**
 * A token bucket driven by a monotonic clock read on demand: no timers, so nothing to clear.
 */

/** Milliseconds from a monotonic clock; injectable for tests. */
export type Clock = () => number;

export const monotonicMs: Clock = () => performance.now();

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
}
