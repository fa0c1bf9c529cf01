/**
 * Relays two tunnel streams into each other on the server (a user's stream and the device's):
 * backpressure both ways, each half-close carried as it comes, and a reset on either side reset
 * on the other with its reason, so neither application ever takes a cut for a clean end.
 */
import type { Duplex } from 'node:stream';
import { reasonOfError, type ReasonCode } from '../mux/reason.js';

/** How a relay ended: both ends carried, or reset (by either side, or by the server). */
export type RelayEnd = 'closed' | 'reset';

/** Which stream a failure came from. */
export type RelaySide = 'a' | 'b';

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
  /**
   * The reason passed on when `side` fails with `reason`; identity by default. The server maps a
   * device session's end ('tunnel-closed') to 'device-offline' for the user.
   */
  translate?(side: RelaySide, reason: ReasonCode): ReasonCode;
}

/** A relay in progress. */
export interface Relay {
  /** Resets both streams with `reason` (revocation, shutdown). A no-op once both are closed. */
  reset(reason: ReasonCode): void;
}

/**
 * A stream the relay can reset with a reason; `cause` is the other side's error, for streams that
 * can carry its message too (a MuxStream's RESET carries only the reason).
 */
type Resettable = Duplex & { reset?: (reason: ReasonCode, cause?: Error) => void };

function resetStream(stream: Resettable, reason: ReasonCode, cause?: Error): void {
  if (stream.destroyed) return;
  if (typeof stream.reset === 'function') stream.reset(reason, cause);
  else stream.destroy();
}

/**
 * Relays `a` and `b` both ways until both have closed, then calls `hooks.onDone` once. Installs
 * 'error' listeners on both. A stream that is already destroyed counts as reset at once.
 */
export function relayStreams(a: Resettable, b: Resettable, hooks: RelayHooks = {}): Relay {
  const started = Date.now();
  const counts = { 'a-to-b': 0, 'b-to-a': 0 };
  let how: RelayEnd = 'closed';
  let reason: ReasonCode | undefined;
  let closed = 0;
  const translate = (side: RelaySide, why: ReasonCode): ReasonCode => hooks.translate?.(side, why) ?? why;

  const cut = (why: ReasonCode, cause?: Error): void => {
    if (how === 'closed') {
      how = 'reset';
      reason = why;
    }
    resetStream(a, why, cause);
    resetStream(b, why, cause);
  };

  const onClosed = (): void => {
    if (++closed !== 2) return;
    hooks.onDone?.({
      aToB: counts['a-to-b'],
      bToA: counts['b-to-a'],
      durationMs: Date.now() - started,
      how,
      ...(reason ? { reason } : {}),
    });
  };

  const pump = (from: Resettable, to: Resettable, side: RelaySide): void => {
    const direction = side === 'a' ? 'a-to-b' : 'b-to-a';
    let paused = false;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      // Closed before both of its ends were carried: a reset, never a clean end on the other side.
      if (!(from.readableEnded && from.writableFinished)) cut(translate(side, from.errored ? reasonOfError(from.errored) : 'error'));
      onClosed();
    };
    from.on('data', (chunk: Buffer) => {
      counts[direction] += chunk.length;
      hooks.tap?.(direction, chunk);
      // Pause only while `to` holds a high-water mark of unsent bytes: write() also returns false
      // for one chunk above the mark that went out at once (src/forward/pipe.ts says why).
      if (!to.write(chunk) && to.writableLength >= to.writableHighWaterMark) {
        paused = true;
        from.pause();
      }
    });
    to.on('drain', () => {
      if (!paused) return;
      paused = false;
      from.resume();
    });
    from.on('end', () => {
      if (!to.destroyed) to.end();
    });
    from.on('error', (err: Error) => cut(translate(side, reasonOfError(err)), err));
    from.on('close', finish);
    // A stream destroyed before the relay began may have emitted 'close' already.
    if (from.destroyed) setImmediate(finish);
  };
  pump(a, b, 'a');
  pump(b, a, 'b');
  return { reset: cut };
}
