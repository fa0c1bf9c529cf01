/**
 * The server's queue of opens into one device's session (issue 13 item 1). A device refuses the
 * opens it receives beyond its own limits (streams, opens per second, pending opens), and each
 * refusal spends the no-data budget whose exhaustion ends its whole session (src/mux/session.ts).
 * So the server, which makes every open into a device (users' relays, reverse-listener
 * connections), never sends one the device would refuse: it keeps opens within its own view of
 * the device session's limits (the [limits] the server applies to that session), with a margin,
 * and queues the rest.
 *
 * - Fair: the queue is served round-robin across requesters (a user's key, a reverse-listener
 *   source address), and within a requester across its sessions, so one key with ten sessions gets
 *   the share one key gets. One requester holds at most half of the device's stream slots.
 * - Bounded: at most MAX_QUEUED opens wait per device and MAX_QUEUED_PER_KEY per requester;
 *   beyond, an open is refused at once (`limit`). A queued open that does not reach the device
 *   within QUEUE_TIMEOUT_MS is refused (`timeout`).
 * - Refusals made here are the server's: the device never sees those opens and pays nothing.
 *
 * Timers are unref'd and cleared by close().
 */
import type { MuxLimits } from '../mux/mux-limits.js';
import type { ReasonCode } from '../mux/reason.js';
import { monotonicMs, type Clock } from '../lib/clock.js';
import { TokenBucket } from '../lib/token-bucket.js';

/** Share of the device's open rate the server uses (the rest absorbs jitter between the two). */
export const DEVICE_OPEN_RATE_SHARE = 0.8;
/** Share of the device's open burst the server uses: arrivals may bunch up on the way. */
export const DEVICE_OPEN_BURST_SHARE = 0.5;
/** Stream slots left free for the device's own opens (its `@services` announcement). */
export const DEVICE_STREAM_SLOTS_RESERVED = 4;
/** Opens sent to the device and not yet answered, at most (its pending-open limit is 64 by default). */
export const MAX_DEVICE_OPENS_IN_FLIGHT = 32;
/** Opens waiting for a slot, per device. */
export const MAX_QUEUED = 256;
/** Opens waiting for a slot, per requester (key or reverse-listener source) and device. */
export const MAX_QUEUED_PER_KEY = 64;
/** A queued open not sent to the device within this long is refused (`timeout`). */
export const QUEUE_TIMEOUT_MS = 10_000;
/** Share of the device's stream slots one requester may hold (relays and opens in flight). */
export const STREAM_SHARE_PER_KEY = 0.5;

/** What the server allows itself toward one device session. */
export interface DeviceOpenLimits {
  readonly openRatePerSecond: number;
  readonly openBurst: number;
  /** Streams in the device session (both directions, as the server counts them) at most. */
  readonly maxStreams: number;
  readonly maxInFlight: number;
  readonly maxStreamsPerKey: number;
  readonly maxQueued: number;
  readonly maxQueuedPerKey: number;
  readonly queueTimeoutMs: number;
}

/** The server's limits toward a device whose session has `device` limits (the server's view). */
export function deviceOpenLimits(device: Pick<MuxLimits, 'openRatePerSecond' | 'openBurst' | 'maxStreams' | 'maxPendingOpens'>): DeviceOpenLimits {
  const maxStreams = Math.max(1, device.maxStreams - DEVICE_STREAM_SLOTS_RESERVED);
  return Object.freeze({
    openRatePerSecond: Math.max(1, Math.floor(device.openRatePerSecond * DEVICE_OPEN_RATE_SHARE)),
    openBurst: Math.max(1, Math.floor(device.openBurst * DEVICE_OPEN_BURST_SHARE)),
    maxStreams,
    maxInFlight: Math.max(1, Math.min(MAX_DEVICE_OPENS_IN_FLIGHT, Math.floor(device.maxPendingOpens / 2))),
    maxStreamsPerKey: Math.max(1, Math.ceil(maxStreams * STREAM_SHARE_PER_KEY)),
    maxQueued: MAX_QUEUED,
    maxQueuedPerKey: MAX_QUEUED_PER_KEY,
    queueTimeoutMs: QUEUE_TIMEOUT_MS,
  });
}

/** A place in the device session, handed to `start`. Both calls are idempotent. */
export interface OpenSlot {
  /** The device answered the open (OPEN_OK or OPEN_FAIL), or it was never sent. */
  answered(): void;
  /** The stream is over (or was never opened): its place in the requester's share is free. */
  done(): void;
}

/** An open waiting for its turn. */
export interface QueuedOpen {
  /** Who asks (fairness and share): a user's public key, a reverse-listener source. */
  readonly key: string;
  /** Which of the requester's sessions (or connections) asks: served round-robin within the key. */
  readonly session: object;
  /** Aborts when the requester gives up: the open leaves the queue silently. */
  readonly signal?: AbortSignal;
  /** Its turn: open the device stream now; call the slot's answered() and done() as it goes. */
  start(slot: OpenSlot): void;
  /** Refused by the server (queue full, waited too long, device gone): `detail` names why. */
  refuse(reason: ReasonCode, detail: string): void;
}

interface Waiter {
  readonly open: QueuedOpen;
  readonly requester: Requester;
  readonly timer: NodeJS.Timeout;
  readonly onAbort: () => void;
}

interface Requester {
  readonly key: string;
  /** Session -> its waiting opens (insertion order is the round-robin order). */
  readonly sessions: Map<object, Waiter[]>;
  queued: number;
  active: number;
}

export class DeviceOpenQueue {
  readonly limits: DeviceOpenLimits;
  readonly #streamCount: () => number;
  readonly #bucket: TokenBucket;
  /** Key -> requester (insertion order is the round-robin order). */
  readonly #requesters = new Map<string, Requester>();
  #queued = 0;
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #pumping = false;
  #closed = false;

  /** `streamCount`: the device session's live streams as the server counts them. */
  constructor(limits: DeviceOpenLimits, streamCount: () => number, clock: Clock = monotonicMs) {
    this.limits = limits;
    this.#streamCount = streamCount;
    this.#bucket = new TokenBucket(limits.openRatePerSecond, limits.openBurst, clock);
  }

  /** Opens waiting for a slot. */
  get queued(): number {
    return this.#queued;
  }

  /** Opens sent to the device and not yet answered. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Starts `open` now if the device has room, else queues it, or refuses it (`limit`). */
  submit(open: QueuedOpen): void {
    if (this.#closed) {
      open.refuse('device-offline', 'not connected');
      return;
    }
    if (open.signal?.aborted) return;
    const requester = this.#requester(open.key);
    if (this.#queued >= this.limits.maxQueued) {
      this.#forgetIfIdle(requester);
      open.refuse('limit', `${this.limits.maxQueued} opens already wait for this device`);
      return;
    }
    if (requester.queued >= this.limits.maxQueuedPerKey) {
      open.refuse('limit', `${this.limits.maxQueuedPerKey} opens of this requester already wait for this device`);
      return;
    }
    const waiter: Waiter = {
      open,
      requester,
      timer: setTimeout(() => {
        if (this.#remove(waiter)) open.refuse('timeout', `no open slot within ${this.limits.queueTimeoutMs} ms`);
      }, this.limits.queueTimeoutMs).unref(),
      onAbort: () => void this.#remove(waiter),
    };
    open.signal?.addEventListener('abort', waiter.onAbort, { once: true });
    const list = requester.sessions.get(open.session);
    if (list === undefined) requester.sessions.set(open.session, [waiter]);
    else list.push(waiter);
    requester.queued++;
    this.#queued++;
    this.#pump();
  }

  /** The device went away: every queued open is refused; nothing more starts. */
  close(detail = 'not connected'): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiters = [...this.#requesters.values()].flatMap((r) => [...r.sessions.values()].flat());
    this.#requesters.clear();
    this.#queued = 0;
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.open.signal?.removeEventListener('abort', w.onAbort);
      w.open.refuse('device-offline', detail);
    }
  }

  #requester(key: string): Requester {
    let r = this.#requesters.get(key);
    if (r === undefined) {
      r = { key, sessions: new Map(), queued: 0, active: 0 };
      this.#requesters.set(key, r);
    }
    return r;
  }

  #forgetIfIdle(r: Requester): void {
    if (r.queued === 0 && r.active === 0 && this.#requesters.get(r.key) === r) this.#requesters.delete(r.key);
  }

  /** Takes `w` out of the queue; false if it had left already. */
  #remove(w: Waiter): boolean {
    const list = w.requester.sessions.get(w.open.session);
    const at = list?.indexOf(w) ?? -1;
    if (list === undefined || at < 0) return false;
    list.splice(at, 1);
    if (list.length === 0) w.requester.sessions.delete(w.open.session);
    clearTimeout(w.timer);
    w.open.signal?.removeEventListener('abort', w.onAbort);
    w.requester.queued--;
    this.#queued--;
    this.#forgetIfIdle(w.requester);
    return true;
  }

  /** Starts queued opens while the device has room, round-robin; re-arms itself when it must wait. */
  #pump(): void {
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    try {
      while (this.#queued > 0) {
        if (this.#inFlight >= this.limits.maxInFlight) return; // an answer pumps again
        if (this.#streamCount() >= this.limits.maxStreams) {
          // A stream ending pumps again when it was one of ours; the device's own may end too.
          this.#retryIn(100);
          return;
        }
        const requester = this.#nextRequester();
        if (requester === undefined) return; // every waiting requester is at its share: done() pumps
        if (!this.#bucket.take()) {
          this.#retryIn(Math.ceil(1000 / this.limits.openRatePerSecond));
          return;
        }
        this.#start(this.#nextWaiter(requester));
      }
    } finally {
      this.#pumping = false;
    }
  }

  #retryIn(ms: number): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#pump();
    }, ms).unref();
  }

  /** The first requester, in round-robin order, with an open waiting and room in its share. */
  #nextRequester(): Requester | undefined {
    for (const r of this.#requesters.values()) {
      if (r.queued > 0 && r.active < this.limits.maxStreamsPerKey) {
        // To the back of the line.
        this.#requesters.delete(r.key);
        this.#requesters.set(r.key, r);
        return r;
      }
    }
    return undefined;
  }

  /** The oldest open of the requester's next session, in round-robin order. */
  #nextWaiter(r: Requester): Waiter {
    const [session, list] = r.sessions.entries().next().value as [object, Waiter[]];
    const w = list[0]!;
    // The session goes to the back of the requester's line.
    r.sessions.delete(session);
    if (list.length > 1) r.sessions.set(session, list);
    list.splice(0, 1);
    return w;
  }

  #start(w: Waiter): void {
    clearTimeout(w.timer);
    w.open.signal?.removeEventListener('abort', w.onAbort);
    const r = w.requester;
    r.queued--;
    this.#queued--;
    r.active++;
    this.#inFlight++;
    let answered = false;
    let done = false;
    const slot: OpenSlot = {
      answered: () => {
        if (answered) return;
        answered = true;
        this.#inFlight--;
        this.#pump();
      },
      done: () => {
        if (done) return;
        slot.answered();
        done = true;
        r.active--;
        this.#forgetIfIdle(r);
        this.#pump();
      },
    };
    try {
      w.open.start(slot);
    } catch {
      slot.done();
    }
  }
}
