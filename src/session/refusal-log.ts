/**
 * Rate-limited logging of refusals. Unauthenticated peers choose how often they fail, so their
 * failures must not choose how much we write: at most REFUSAL_LOG_LINES_PER_SECOND lines a second;
 * the next line written reports how many were suppressed.
 */
import type { Logger } from 'pino';
import { EVENTS } from '../log/events.js';

export const REFUSAL_LOG_LINES_PER_SECOND = 20;

/** Why a handshake or connection was refused (the operator's vocabulary). */
export type RefusalReason =
  | 'unknown-key'
  | 'revoked'
  | 'psk-required'
  | 'replay'
  | 'bad-message'
  | 'rate-limited'
  | 'too-many-unauthenticated'
  | 'handshake-timeout'
  | 'psk-or-key-confirmation-failed'
  | 'too-many-sessions';

export interface RefusalDetails {
  readonly remote: string;
  readonly fingerprint?: string;
  readonly detail?: string;
}

export class RefusalLog {
  readonly #logger: Logger;
  #windowStart = 0;
  #lines = 0;
  #suppressed = 0;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  refused(reason: RefusalReason, details: RefusalDetails): void {
    const now = performance.now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#lines = 0;
    }
    if (this.#lines >= REFUSAL_LOG_LINES_PER_SECOND) {
      this.#suppressed++;
      return;
    }
    this.#lines++;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    this.#logger.warn(
      { event: EVENTS.authRefused, reason, ...details, ...(suppressed > 0 ? { suppressed } : {}) },
      'handshake refused',
    );
  }
}
