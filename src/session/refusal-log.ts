/**
 * Logging of refused handshakes, in the operator's vocabulary. The lines are rate-limited by the
 * logger itself (src/log/rate-limit.ts: a few lines per interval, then one summary with counts by
 * reason), as every refusal line is, so unauthenticated peers cannot choose how much we write.
 */
import type { Logger } from 'pino';
import { EVENTS } from '../log/events.js';

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
  | 'too-many-sessions'
  | JoinRefusalReason
  | 'pending-approval';

/** Why a join handshake's invitation was refused (docs/PROTOCOL.md §12). */
export type JoinRefusalReason = 'invite-unknown' | 'invite-expired' | 'invite-used' | 'invite-revoked';

export interface RefusalDetails {
  readonly remote: string;
  readonly fingerprint?: string;
  readonly detail?: string;
}

export class RefusalLog {
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  refused(reason: RefusalReason, details: RefusalDetails): void {
    this.#logger.warn({ event: EVENTS.authRefused, reason, ...details }, 'handshake refused');
  }
}
