/**
 * Rate-limited refusal lines. Peers choose how often they are refused, so their refusals must not
 * choose how much we write (SECURITY.md, "logging"; issue 13 items 1 and 11). Every line whose
 * event is a refusal goes through one limiter owned by the root logger, whoever writes it:
 *
 * - each bucket (below) writes at most REFUSAL_LINES_PER_INTERVAL lines per
 *   REFUSAL_LOG_INTERVAL_MS, as they come;
 * - the lines beyond that are counted by `reason`, and when the interval ends one
 *   `refusals.suppressed` line per bucket reports them: `{ of, peer?, device?, suppressed,
 *   reasons: { "unknown-key": 1200, ... }, intervalMs }`;
 * - the daemon writes what is still pending when it stops (flushLogSummaries).
 *
 * Metrics still see every line (they count before the limiter decides).
 */
import { monotonicMs, type Clock } from '../lib/clock.js';
import { EVENTS } from './events.js';

/** Length of one logging interval, milliseconds. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;
/** Lines one bucket writes in full per interval before it only counts. */
export const REFUSAL_LINES_PER_INTERVAL = 10;
/** Buckets tracked at once (peers, devices); beyond it, new identities share one bucket. */
const MAX_BUCKETS = 1_024;

type Fields = Readonly<Record<string, unknown>>;

/** Who a bucket is about, repeated in its summary line. */
interface BucketId {
  readonly key: string;
  readonly of: string;
  readonly identity: Readonly<Record<string, string>>;
}

/**
 * The rate-limiting policy, in one place: which lines are limited, and which share a budget.
 * - `auth.refused`: unauthenticated peers, one budget for the listener;
 * - `stream.refused`, `stream.reset`, `device.stream.refused`: per peer (the key a session
 *   belongs to), per device and per user (a device's lines name the user the server relayed);
 * - every `device.stream.*` line of a reverse-listener connection (`user: "reverse"`), which
 *   anyone who reaches the listener causes: per device.
 * Undefined for a line that is always written.
 */
export function refusalBucket(fields: Fields, bindings: Fields): BucketId | undefined {
  const event = fields.event;
  const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const peer = text(fields.peer) ?? text(bindings.peer);
  const device = text(fields.device) ?? text(bindings.device);
  switch (event) {
    case EVENTS.authRefused:
      return { key: event, of: event, identity: {} };
    case EVENTS.streamRefused:
    case EVENTS.streamReset:
    case EVENTS.deviceStreamRefused:
    case EVENTS.deviceStreamOpen:
    case EVENTS.deviceStreamClose: {
      if (fields.user === 'reverse') return { key: `reverse\0${device ?? ''}`, of: 'reverse connection', identity: device ? { device } : {} };
      if (event === EVENTS.deviceStreamOpen || event === EVENTS.deviceStreamClose) return undefined;
      const user = text(fields.user);
      const identity: Record<string, string> = {};
      if (peer !== undefined) identity.peer = peer;
      if (device !== undefined) identity.device = device;
      if (user !== undefined) identity.user = user;
      return { key: `${event}\0${peer ?? ''}\0${device ?? ''}\0${user ?? ''}`, of: event, identity };
    }
    default:
      return undefined;
  }
}

/** Events refusalBucket may limit (a cheap first test). */
export const LIMITED_EVENTS: ReadonlySet<unknown> = new Set<string>([
  EVENTS.authRefused,
  EVENTS.streamRefused,
  EVENTS.streamReset,
  EVENTS.deviceStreamRefused,
  EVENTS.deviceStreamOpen,
  EVENTS.deviceStreamClose,
]);

interface Bucket {
  readonly id: BucketId;
  windowStart: number;
  lines: number;
  suppressed: number;
  readonly reasons: Map<string, number>;
}

/** Writes a summary line (through the root logger, at warn). */
export type SummaryWriter = (fields: Record<string, unknown>, message: string) => void;

export class RefusalLimiter {
  readonly #write: SummaryWriter;
  readonly #now: Clock;
  readonly #buckets = new Map<string, Bucket>();
  #timer: NodeJS.Timeout | undefined;

  constructor(write: SummaryWriter, now: Clock = monotonicMs) {
    this.#write = write;
    this.#now = now;
  }

  /** True when the line is to be written; false when it is counted for the next summary. */
  admit(id: BucketId, reason: unknown): boolean {
    const now = this.#now();
    let bucket = this.#buckets.get(id.key);
    if (bucket === undefined) {
      if (this.#buckets.size >= MAX_BUCKETS) {
        this.flush();
        this.#buckets.clear();
      }
      bucket = { id, windowStart: now, lines: 0, suppressed: 0, reasons: new Map() };
      this.#buckets.set(id.key, bucket);
    }
    if (now - bucket.windowStart >= REFUSAL_LOG_INTERVAL_MS) {
      this.#report(bucket);
      bucket.windowStart = now;
      bucket.lines = 0;
    }
    if (bucket.lines < REFUSAL_LINES_PER_INTERVAL) {
      bucket.lines++;
      return true;
    }
    bucket.suppressed++;
    const why = typeof reason === 'string' && reason !== '' ? reason.slice(0, 64) : 'other';
    bucket.reasons.set(why, (bucket.reasons.get(why) ?? 0) + 1);
    this.#arm(bucket);
    return false;
  }

  /** Writes every pending summary now (the daemon is stopping). */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const bucket of this.#buckets.values()) this.#report(bucket);
  }

  #arm(bucket: Bucket): void {
    if (this.#timer !== undefined) return;
    const delay = Math.max(0, bucket.windowStart + REFUSAL_LOG_INTERVAL_MS - this.#now());
    this.#timer = setTimeout(() => this.#onInterval(), delay);
    this.#timer.unref();
  }

  #onInterval(): void {
    this.#timer = undefined;
    const now = this.#now();
    let next: Bucket | undefined;
    for (const [key, bucket] of this.#buckets) {
      if (now - bucket.windowStart >= REFUSAL_LOG_INTERVAL_MS) {
        this.#report(bucket);
        this.#buckets.delete(key);
      } else if (bucket.suppressed > 0 && (next === undefined || bucket.windowStart < next.windowStart)) {
        next = bucket;
      }
    }
    if (next !== undefined) this.#arm(next);
  }

  #report(bucket: Bucket): void {
    if (bucket.suppressed === 0) return;
    const reasons = Object.fromEntries(bucket.reasons);
    const count = bucket.suppressed;
    bucket.suppressed = 0;
    bucket.reasons.clear();
    this.#write(
      { event: EVENTS.refusalsSuppressed, of: bucket.id.of, ...bucket.id.identity, suppressed: count, reasons, intervalMs: REFUSAL_LOG_INTERVAL_MS },
      `${count} more ${bucket.id.of} lines in ${REFUSAL_LOG_INTERVAL_MS / 1000} s not written, by reason: ${Object.entries(reasons)
        .map(([r, n]) => `${r} ${n}`)
        .join(', ')}`,
    );
  }
}
