/**
 * A bound on the wait for the server's answer to an open (issue 13, item 12): the server answers
 * every open within its `dial_timeout_ms`, queueing for a dial slot included, so an open still
 * unanswered after the client's `dial_timeout_ms` plus a margin for the round trip fails with
 * reason 'timeout' (`twoway connect` exits 5, SOCKS5 replies "TTL expired") instead of hanging.
 * The stream is reset toward the server, which cancels the open there.
 */
import { MuxStreamError } from '../mux/reason.js';
import type { MuxStream } from '../mux/stream.js';

/** Added to `dial_timeout_ms`: the round trip and the server's own timer. */
export const OPEN_ANSWER_MARGIN_MS = 5_000;

/** Fails `stream` with ERR_MUX_STREAM_REFUSED 'timeout' unless it opens or ends within `ms`. */
export function answerWithin(stream: MuxStream, ms: number): MuxStream {
  const timer = setTimeout(() => {
    stream.destroy(
      new MuxStreamError('ERR_MUX_STREAM_REFUSED', `open ${String(stream.target).slice(0, 300)}: no answer from the server within ${ms} ms`, 'timeout'),
    );
  }, ms);
  timer.unref();
  const done = (): void => clearTimeout(timer);
  stream.once('open', done);
  stream.once('close', done);
  return stream;
}
