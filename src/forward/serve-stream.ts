/**
 * Serving one tunnel stream from a dialed socket, as the server does for its targets
 * (src/server/target-streams.ts) and a device agent for its services (src/device/agent.ts): dial,
 * check again once connected (no byte has moved yet), accept, pipe, and report the open and the
 * close to the owner, which logs and counts them with its own fields.
 *
 * The order is the contract: the stream is accepted only after the dial connected and passed the
 * check, so the user's application sees a clean refusal with the dial's reason, never a
 * connection that accepts and then dies. (A device's end-to-end stream is accepted earlier, for
 * its inner handshake; its `accept` then hands over the stream that already exists.)
 */
import type { Duplex } from 'node:stream';
import type { Dialed } from './dial-target.js';
import { pipeSocketStream, type PipeResult } from './pipe.js';
import { reasonOfError, type ReasonCode } from '../mux/reason.js';

export interface ServeOptions<S extends Duplex> {
  /**
   * The dial in progress: resolves with the connected socket, or undefined when the open was
   * settled meanwhile (the dialer refused it itself). Rejects with the dial's failure; a `reason`
   * field on it is passed on to the opener ('error' otherwise).
   */
  readonly dialing: Promise<Dialed | undefined>;
  /** True once nobody waits for this open any more (cancelled, refused, timed out). */
  readonly settled: () => boolean;
  /**
   * Connected, before the accept: why the open may no longer proceed (a reload ran during the
   * dial), or undefined. A refusal here resets the socket and refuses with 'not-permitted'.
   */
  readonly recheck?: (dialed: Dialed) => string | undefined;
  /** Accepts the stream; throws when the open was cancelled at the last moment (the socket is closed). */
  readonly accept: () => S;
  /** Answers the open with a refusal. */
  readonly refuse: (reason: ReasonCode, message: string) => void;
  /** The message a dial failure is refused with (default: the error's message). */
  readonly dialFailure?: (err: Error) => string;
  /**
   * Accepted and about to be piped: the owner logs the open and tracks the stream, and returns
   * what to do once the stream and the socket have both closed.
   */
  readonly onOpen: (stream: S, dialed: Dialed) => (result: PipeResult) => void;
}

/** Dials, re-checks, accepts and pipes one stream (see the file header); never throws. */
export function serveStream<S extends Duplex>(o: ServeOptions<S>): void {
  o.dialing.then(
    (dialed) => {
      if (dialed === undefined) return;
      if (o.settled()) {
        dialed.socket.destroy();
        return;
      }
      const why = o.recheck?.(dialed);
      if (why !== undefined) {
        dialed.socket.resetAndDestroy();
        o.refuse('not-permitted', why);
        return;
      }
      pipeAccepted(dialed, o);
    },
    (err: Error) => {
      if (o.settled()) return;
      o.refuse(reasonOfError(err), o.dialFailure ? o.dialFailure(err) : err.message);
    },
  );
}

function pipeAccepted<S extends Duplex>(dialed: Dialed, o: ServeOptions<S>): void {
  let stream: S;
  try {
    stream = o.accept();
  } catch {
    dialed.socket.destroy();
    return;
  }
  const onClosed = o.onOpen(stream, dialed);
  pipeSocketStream(dialed.socket, stream, { onDone: onClosed });
}
