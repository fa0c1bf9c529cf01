/**
 * The client's connect loop: one round tries each server URL in order; a session, once up, runs
 * until it closes; then the loop waits out a capped, jittered backoff and tries again. Two things
 * cut the wait short: a local connection waiting for the tunnel (at most once per
 * ON_DEMAND_MIN_INTERVAL_MS, and not within AUTH_REFUSED_HOLD_MS of the server refusing our key)
 * and `twoway reconnect` (always).
 *
 *   connecting --session--> running --closed--> backoff --delay / wake--> connecting
 *   connecting --all URLs failed--> backoff (or, with `once`, the end)
 */
import type { Logger } from 'pino';
import { TwowayError } from '../errors.js';
import { EVENTS } from '../log/events.js';
import type { SecureSession } from '../session/secure-session.js';
import { backoffDelayMs } from './backoff.js';

/** A session that lasted this long resets the backoff. */
const STABLE_SESSION_MS = 30_000;
/**
 * A local connection that arrives while the client waits out its backoff makes it try at once
 * (a laptop back from sleep), at most once in this interval (issue 12 item 9).
 */
export const ON_DEMAND_MIN_INTERVAL_MS = 5_000;
/** After the server refused this client's key, only `twoway reconnect` cuts the backoff short for this long. */
export const AUTH_REFUSED_HOLD_MS = 60_000;
/** Failures that mean the server (or our pin) refuses us: retrying on demand would only hammer it. */
const AUTH_REFUSED_CODES: ReadonlySet<string> = new Set([
  'ERR_SESSION_AUTH',
  'ERR_SESSION_SERVER_KEY_MISMATCH',
  'ERR_SESSION_PROTOCOL_VERSION',
  'ERR_SESSION_DECRYPT',
]);

/** What the loop needs from the daemon: the URLs, how to connect to one, and what to do with a session. */
export interface ConnectLoopOptions {
  readonly serverUrls: readonly string[];
  /** Establishes one secure session with the server at `url`. */
  readonly connect: (url: string) => Promise<SecureSession>;
  /** Runs an established session; resolves once it has closed. */
  readonly runSession: (session: SecureSession) => Promise<void>;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** The backoff's jitter source, in [0, 1) (default Math.random). */
  readonly random?: () => number;
  /** Stop after the first round in which every URL failed, calling `onGiveUp` with its first error. */
  readonly once?: boolean;
  readonly onGiveUp?: (err: Error) => void;
  readonly logger: Logger;
}

/** Keeps one session with the server up, retrying on the backoff schedule until `stop()`. */
export class ConnectLoop {
  readonly #o: ConnectLoopOptions;
  readonly #log: Logger;
  #stopping = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Ends the backoff wait early; set only while the loop waits out a backoff delay. */
  #wake: (() => void) | undefined;
  #lastOnDemandAt = -Infinity;
  #authRefusedAt = -Infinity;
  /** Called when the connection attempt under way (or the next one) has ended. */
  #attemptWaiters: Array<() => void> = [];
  #lastError: string | undefined;
  #serverUrl: string | undefined;

  constructor(options: ConnectLoopOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  /** True once `stop()` was called. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** True while the loop waits out a backoff delay (not connected, no attempt under way). */
  get waiting(): boolean {
    return this.#wake !== undefined;
  }

  /** The message of the last failed connection; cleared by a successful one. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** The URL of the last session established. */
  get serverUrl(): string | undefined {
    return this.#serverUrl;
  }

  /** Runs the loop until `stop()` (or, with `once`, a round that failed). */
  async run(): Promise<void> {
    while (!this.#stopping) {
      const session = await this.#connectOnce();
      if (this.#stopping) {
        session?.close({ code: 'shutdown' });
        return;
      }
      if (session) {
        const startedAt = Date.now();
        const running = this.#o.runSession(session);
        this.#attemptEnded();
        await running;
        if (Date.now() - startedAt >= STABLE_SESSION_MS) this.#attempt = 0;
        if (this.#stopping) return;
      } else if (this.#o.once) {
        return;
      }
      const delay = backoffDelayMs(this.#attempt++, {
        minMs: this.#o.reconnectMinMs,
        maxMs: this.#o.reconnectMaxMs,
        ...(this.#o.random ? { random: this.#o.random } : {}),
      });
      this.#log.info({ event: EVENTS.reconnectScheduled, delayMs: delay, attempt: this.#attempt }, `reconnecting in ${delay} ms`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#retryTimer = setTimeout(resolve, delay);
        // A round that failed ends its attempt once the backoff is armed (one that got a session
        // ended it when the session came up): `twoway reconnect` then reports the failure.
        if (!session) this.#attemptEnded();
      });
      this.#wake = undefined;
      if (this.#retryTimer) clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
  }

  /** A local connection is waiting: end the backoff wait, unless that would hammer the server. */
  reconnectOnDemand(): void {
    if (this.#wake === undefined) return; // connected, or an attempt is under way
    const now = Date.now();
    if (now - this.#lastOnDemandAt < ON_DEMAND_MIN_INTERVAL_MS || now - this.#authRefusedAt < AUTH_REFUSED_HOLD_MS) return;
    this.#lastOnDemandAt = now;
    this.#log.info(
      { event: EVENTS.reconnectScheduled, delayMs: 0, trigger: 'on-demand', attempt: this.#attempt },
      'a local connection is waiting: reconnecting now',
    );
    this.#wakeUp();
  }

  /**
   * `twoway reconnect`: ends the backoff wait now, even within the hold after an authentication
   * refusal (the user asked), and resolves once that attempt ended or after `timeoutMs`.
   */
  async reconnectNow(timeoutMs: number): Promise<void> {
    const ended = new Promise<void>((resolve) => this.#attemptWaiters.push(resolve));
    if (this.#wake !== undefined) {
      this.#log.info({ event: EVENTS.reconnectScheduled, delayMs: 0, trigger: 'requested', attempt: this.#attempt }, 'reconnect requested: reconnecting now');
      this.#wakeUp();
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** Ends the loop: no further attempt starts, and whoever waits for one is let go. */
  stop(): void {
    this.#stopping = true;
    this.#wakeUp();
    this.#attemptEnded();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    wake?.();
  }

  #attemptEnded(): void {
    for (const done of this.#attemptWaiters.splice(0)) done();
  }

  /** Tries each server URL in order; resolves with a session or undefined when all failed. */
  async #connectOnce(): Promise<SecureSession | undefined> {
    let firstError: Error | undefined;
    for (const url of this.#o.serverUrls) {
      if (this.#stopping) return undefined;
      this.#log.debug({ event: EVENTS.connectAttempt, url }, `connecting to ${url}`);
      try {
        const session = await this.#o.connect(url);
        this.#serverUrl = url;
        this.#lastError = undefined;
        this.#authRefusedAt = -Infinity;
        return session;
      } catch (err) {
        const e = err as Error;
        firstError ??= e;
        this.#lastError = e.message;
        if (err instanceof TwowayError && AUTH_REFUSED_CODES.has(err.code)) this.#authRefusedAt = Date.now();
        this.#log.warn(
          { event: EVENTS.connectFailed, url, code: err instanceof TwowayError ? err.code : (err as NodeJS.ErrnoException).code, err: e.message },
          `connecting to ${url} failed: ${e.message}`,
        );
      }
    }
    if (this.#o.once && firstError) this.#o.onGiveUp?.(firstError);
    return undefined;
  }
}
