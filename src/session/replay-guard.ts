/**
 * Replay protection for handshake message 1 (WireGuard §5.1): per client key, the TAI64N
 * timestamp must be strictly newer than the last accepted one, and initiations of one key are at
 * least MIN_INITIATION_INTERVAL_MS apart. Entries exist only for keys the allowlist knows, and the
 * map is bounded besides: forgetting a key re-admits an old message 1 at worst, which still
 * cannot pass key confirmation.
 */
import { monotonicMs, type Clock } from '../lib/clock.js';
import { compareTai64n } from './tai64n.js';

export const MIN_INITIATION_INTERVAL_MS = 20;
export const MAX_REPLAY_ENTRIES = 65_536;

export type ReplayVerdict = 'ok' | 'replay' | 'too-soon';

export class ReplayGuard {
  readonly #entries = new Map<string, { timestamp: Uint8Array; at: number }>();
  readonly #now: Clock;

  constructor(now: Clock = monotonicMs) {
    this.#now = now;
  }

  /** Checks and, when acceptable, records the initiation of `fingerprint` at `timestamp`. */
  check(fingerprint: string, timestamp: Uint8Array): ReplayVerdict {
    const now = this.#now();
    const last = this.#entries.get(fingerprint);
    if (last !== undefined) {
      if (compareTai64n(timestamp, last.timestamp) <= 0) return 'replay';
      if (now - last.at < MIN_INITIATION_INTERVAL_MS) return 'too-soon';
      this.#entries.delete(fingerprint);
    } else if (this.#entries.size >= MAX_REPLAY_ENTRIES) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(fingerprint, { timestamp: timestamp.slice(), at: now });
    return 'ok';
  }
}
