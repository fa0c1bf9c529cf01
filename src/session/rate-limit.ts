/**
 * Handshake admission by source: one token bucket (src/lib/token-bucket.ts) per source address in
 * a bounded map, and (the same map type, keyed by fingerprint) one per client key once message 1
 * decrypted; the global bucket is a plain TokenBucket in listen-secure.ts.
 * When the map is full the least recently refilled entry is evicted; an evicted address merely
 * starts again with a full burst, so eviction never blocks anyone.
 */
import { isIPv4 } from 'node:net';
import { monotonicMs, type Clock } from '../lib/clock.js';
import { TokenBucket } from '../lib/token-bucket.js';

/** Most source addresses tracked at once. */
export const MAX_RATE_LIMIT_ENTRIES = 16_384;

export class AddressRateLimiter {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #maxEntries: number;
  readonly #now: Clock;
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(perSecond: number, burst: number, maxEntries = MAX_RATE_LIMIT_ENTRIES, now: Clock = monotonicMs) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#maxEntries = maxEntries;
    this.#now = now;
  }

  /** Takes one token for `addressKey`. */
  take(addressKey: string): boolean {
    let bucket = this.#buckets.get(addressKey);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxEntries) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
      bucket = new TokenBucket(this.#perSecond, this.#burst, this.#now);
    } else {
      this.#buckets.delete(addressKey); // re-insert: Map order is recency order
    }
    this.#buckets.set(addressKey, bucket);
    return bucket.take();
  }

  /** Gives back the token last taken for `addressKey` (when it is still tracked). */
  refund(addressKey: string): void {
    this.#buckets.get(addressKey)?.refund();
  }

  get size(): number {
    return this.#buckets.size;
  }
}

/**
 * The key under which a source address is limited: IPv4 as is (IPv4-mapped IPv6 unwrapped);
 * IPv6 by its /64, since one host usually holds a whole /64.
 */
export function addressKey(ip: string): string {
  const lower = ip.toLowerCase();
  if (lower.startsWith('::ffff:') && isIPv4(lower.slice(7))) return lower.slice(7);
  if (!lower.includes(':')) return lower;
  const [head = '', tail] = lower.split('::', 2);
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined ? headGroups : [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill('0'), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
