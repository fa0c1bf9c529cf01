/**
 * A log line that an outsider can repeat at will (a refused reverse-listener connection, an open
 * refused because a device's queue is full) is written at most `linesPerInterval` times an
 * interval; the rest are counted and reported in one summary line when the interval ends
 * (issue 13 items 1 and 11). The minimal version of the rate-limited refusal logging planned in
 * src/log; swap it for that once it exists.
 */
import type { Logger } from 'pino';

/** Lines written one by one per interval before the rest are only counted. */
export const THROTTLED_LINES_PER_INTERVAL = 5;
/** Length of an interval; a summary line follows each interval in which lines were counted. */
export const THROTTLE_INTERVAL_MS = 1_000;

export class LogThrottle {
  readonly #log: Logger;
  readonly #fields: Readonly<Record<string, unknown>>;
  readonly #what: string;
  readonly #linesPerInterval: number;
  readonly #intervalMs: number;
  #windowStart = -Infinity;
  #lines = 0;
  #suppressed = 0;
  #timer: NodeJS.Timeout | undefined;

  /** `fields` go on the summary line (its `event`, the device...); `what` names the lines counted. */
  constructor(log: Logger, fields: Readonly<Record<string, unknown>>, what: string, linesPerInterval = THROTTLED_LINES_PER_INTERVAL, intervalMs = THROTTLE_INTERVAL_MS) {
    this.#log = log;
    this.#fields = fields;
    this.#what = what;
    this.#linesPerInterval = linesPerInterval;
    this.#intervalMs = intervalMs;
  }

  /** Runs `write` (one log call) unless this interval's lines are spent; then only counts it. */
  line(write: () => void): void {
    const now = performance.now();
    if (now - this.#windowStart >= this.#intervalMs) {
      this.#windowStart = now;
      this.#lines = 0;
    }
    if (this.#lines < this.#linesPerInterval) {
      this.#lines++;
      write();
      return;
    }
    this.#suppressed++;
    this.#timer ??= setTimeout(() => this.#summary(), Math.max(1, this.#windowStart + this.#intervalMs - now)).unref();
  }

  /** Writes the pending summary now and stops the timer (the owner is going away). */
  close(): void {
    if (this.#timer !== undefined) this.#summary();
  }

  #summary(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const n = this.#suppressed;
    this.#suppressed = 0;
    if (n === 0) return;
    this.#log.warn({ ...this.#fields, suppressed: n }, `${n} more ${this.#what} not logged one by one`);
  }
}
