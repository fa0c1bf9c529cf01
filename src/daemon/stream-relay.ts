/**
 * Relays two tunnel streams into each other on the server (a user's stream and the device's):
 * backpressure both ways, each half-close carried as it comes, and a reset on either side reset
 * on the other with its reason, so neither application ever takes a cut for a clean end.
 */
import type { Duplex } from 'node:stream';
import { isReasonCode, type ReasonCode } from '../mux/reason.js';

/** How a relay ended: both ends carried, or reset (by either side, or by the server). */
export type RelayEnd = 'closed' | 'reset';

export interface RelayResult {
  /** Bytes from `a` written to `b`. */
  readonly aToB: number;
  readonly bToA: number;
  readonly durationMs: number;
  readonly how: RelayEnd;
  readonly reason?: ReasonCode;
}

export interface RelayHooks {
  /** Called once, after both streams have closed. */
  onDone?(result: RelayResult): void;
  /** Sees every chunk relayed (audits: `twoway server --debug-relay-capture`). */
  tap?(direction: 'a-to-b' | 'b-to-a', chunk: Buffer): void;
}

/** A relay in progress. */
export interface Relay {
  /** Resets both streams with `reason` (revocation, shutdown). */
  reset(reason: ReasonCode): void;
}

type Resettable = Duplex & { reset?: (reason: ReasonCode) => void };

function resetStream(stream: Resettable, reason: ReasonCode): void {
  if (stream.destroyed) return;
  if (typeof stream.reset === 'function') stream.reset(reason);
  else stream.destroy();
}

function reasonOf(err: unknown): ReasonCode {
  const reason = (err as { reason?: unknown } | undefined)?.reason;
  return isReasonCode(reason) ? reason : 'error';
}

/** Relays `a` and `b` both ways until both have closed. Installs 'error' listeners on both. */
export function relayStreams(a: Resettable, b: Resettable, hooks: RelayHooks = {}): Relay {
  const started = Date.now();
  const counts = { 'a-to-b': 0, 'b-to-a': 0 };
  let how: RelayEnd = 'closed';
  let reason: ReasonCode | undefined;
  let closed = 0;

  const cut = (why: ReasonCode): void => {
    if (how === 'closed') {
      how = 'reset';
      reason = why;
    }
    resetStream(a, why);
    resetStream(b, why);
  };

  const pump = (from: Resettable, to: Resettable, direction: 'a-to-b' | 'b-to-a'): void => {
    from.on('data', (chunk: Buffer) => {
      counts[direction] += chunk.length;
      hooks.tap?.(direction, chunk);
      if (!to.write(chunk) && to.writableLength >= to.writableHighWaterMark) from.pause();
    });
    to.on('drain', () => from.resume());
    from.on('end', () => {
      if (!to.destroyed) to.end();
    });
    from.on('error', (err: Error) => cut(reasonOf(err)));
    from.on('close', () => {
      // Closed before both of its ends were carried: a reset, never a clean end on the other side.
      if (!(from.readableEnded && from.writableFinished)) cut(from.errored ? reasonOf(from.errored) : 'error');
      if (++closed === 2) {
        hooks.onDone?.({
          aToB: counts['a-to-b'],
          bToA: counts['b-to-a'],
          durationMs: Date.now() - started,
          how,
          ...(reason ? { reason } : {}),
        });
      }
    });
  };
  pump(a, b, 'a-to-b');
  pump(b, a, 'b-to-a');
  return { reset: cut };
}
