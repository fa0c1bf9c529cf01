/**
 * All timer policy of one secure session, as named hooks (after wireguard-go's timers.go). The
 * data path only records timestamps (`onDataSent`, `onRecordReceived`): each timer re-checks the
 * timestamp when it fires and re-arms for the remainder, so no timer is touched per record.
 * Every timer is unref'd and `stop()` clears them all.
 */
import { monotonicMs, type Clock } from '../lib/clock.js';
import type { SessionLimits } from './session-limits.js';

export interface SessionTimerEvents {
  /** Nothing was sent for keepaliveIntervalMs: send an encrypted empty record. */
  sendKeepalive(): void;
  /** Nothing authenticated arrived for deadAfterMs. */
  peerDead(): void;
  /** The current keys reached rekeyAfterMs. */
  rekeyDue(): void;
  /** The oldest key in use reached rejectAfterMs. */
  keysExpired(): void;
}

/** Slack before the responder asks for a rekey, so the initiator's own timer normally wins. */
function responderRekeySlackMs(rekeyAfterMs: number): number {
  return Math.min(5_000, Math.ceil(rekeyAfterMs / 8));
}

export class SessionTimers {
  readonly #limits: SessionLimits;
  readonly #events: SessionTimerEvents;
  readonly #now: Clock;
  readonly #rekeyDelayMs: number;
  #lastSentAt: number;
  #lastReceivedAt: number;
  #keepalive: NodeJS.Timeout | undefined;
  #dead: NodeJS.Timeout | undefined;
  #rekey: NodeJS.Timeout | undefined;
  #reject: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(limits: SessionLimits, initiator: boolean, events: SessionTimerEvents, now: Clock = monotonicMs) {
    this.#limits = limits;
    this.#events = events;
    this.#now = now;
    this.#rekeyDelayMs = initiator ? limits.rekeyAfterMs : limits.rekeyAfterMs + responderRekeySlackMs(limits.rekeyAfterMs);
    this.#lastSentAt = now();
    this.#lastReceivedAt = this.#lastSentAt;
    this.#keepalive = this.#arm(limits.keepaliveIntervalMs, this.#onKeepaliveTimer);
    this.#dead = this.#arm(limits.deadAfterMs, this.#onDeadTimer);
  }

  /** Any record was sent (data, keepalive, control). */
  onDataSent(): void {
    this.#lastSentAt = this.#now();
  }

  /** An authenticated record arrived. */
  onRecordReceived(): void {
    this.#lastReceivedAt = this.#now();
  }

  /** Fresh keys are in use in both directions: restart the rekey and reject clocks. */
  onHandshakeComplete(): void {
    if (this.#stopped) return;
    clearTimeout(this.#rekey);
    clearTimeout(this.#reject);
    this.#rekey = this.#arm(this.#rekeyDelayMs, () => {
      this.#rekey = undefined;
      this.#events.rekeyDue();
    });
    this.#reject = this.#arm(this.#limits.rejectAfterMs, () => {
      this.#reject = undefined;
      this.#events.keysExpired();
    });
  }

  /** True while any timer is armed (for tests: nothing is left after close). */
  get active(): boolean {
    return [this.#keepalive, this.#dead, this.#rekey, this.#reject].some((t) => t !== undefined);
  }

  stop(): void {
    this.#stopped = true;
    for (const t of [this.#keepalive, this.#dead, this.#rekey, this.#reject]) clearTimeout(t);
    this.#keepalive = this.#dead = this.#rekey = this.#reject = undefined;
  }

  #arm(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(fn, Math.max(1, Math.ceil(ms)));
    t.unref();
    return t;
  }

  readonly #onKeepaliveTimer = (): void => {
    this.#keepalive = undefined;
    if (this.#stopped) return;
    const idle = this.#now() - this.#lastSentAt;
    if (idle >= this.#limits.keepaliveIntervalMs) {
      this.#events.sendKeepalive();
      if (this.#stopped) return;
      this.#keepalive = this.#arm(this.#limits.keepaliveIntervalMs, this.#onKeepaliveTimer);
    } else {
      this.#keepalive = this.#arm(this.#limits.keepaliveIntervalMs - idle, this.#onKeepaliveTimer);
    }
  };

  readonly #onDeadTimer = (): void => {
    this.#dead = undefined;
    if (this.#stopped) return;
    const silent = this.#now() - this.#lastReceivedAt;
    if (silent >= this.#limits.deadAfterMs) {
      this.#events.peerDead();
      return;
    }
    this.#dead = this.#arm(this.#limits.deadAfterMs - silent, this.#onDeadTimer);
  };
}
