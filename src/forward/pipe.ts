/**
 * Pipes a TCP socket and a tunnel stream into each other with backpressure both ways and
 * faithful half-close: an end of stream in one direction is carried as a FIN and never closes the
 * other direction. A stream that dies without an authenticated end (reset, refused, session lost)
 * resets the socket (SECURITY.md #10): the application must not take truncated data for a clean
 * end. A socket error resets the stream.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';

const EMPTY = Buffer.alloc(0);

/** A stream that can withhold receive credit (MuxStream). */
interface CreditHolder {
  holdCredit(held: boolean): void;
}

/**
 * How a pipe ended: `closed` both FINs carried; `stream-error` the stream failed (refused, reset,
 * session lost); `socket-error` the local socket failed; `reset` one side was destroyed without
 * an error before both FINs (e.g. a listener closing, a stream cancelled).
 */
export type PipeEnd = 'closed' | 'stream-error' | 'socket-error' | 'reset';

export interface PipeResult {
  /** Bytes written to the socket (from the tunnel). */
  readonly bytesToSocket: number;
  /** Bytes read from the socket (into the tunnel). */
  readonly bytesFromSocket: number;
  readonly durationMs: number;
  readonly how: PipeEnd;
  readonly error?: Error;
}

export interface PipeHooks {
  /** Called once, after both the socket and the stream have closed. */
  onDone?(result: PipeResult): void;
}

/**
 * Pipes `socket` and `stream` both ways until both are closed, then calls `hooks.onDone` once.
 * Installs 'error' listeners on both.
 */
export function pipeSocketStream(socket: net.Socket, stream: Duplex, hooks: PipeHooks = {}): void {
  const started = Date.now();
  let toSocket = 0;
  let fromSocket = 0;
  let how: PipeEnd = 'closed';
  let error: Error | undefined;
  let socketClosed = false;
  let streamClosed = false;
  let reported = false;

  const report = (): void => {
    if (reported || !socketClosed || !streamClosed) return;
    reported = true;
    hooks.onDone?.({ bytesToSocket: toSocket, bytesFromSocket: fromSocket, durationMs: Date.now() - started, how, ...(error ? { error } : {}) });
  };

  if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true);

  // A side pauses only while the other still holds a high-water mark of unsent bytes: write()
  // returns false for any chunk above the mark even when it went out at once (a 64 KiB read into
  // a socket's 16 KiB mark), and pausing then would stop and restart the reader on every read.
  // Whenever a side does pause, write() has returned false, so 'drain' follows.
  socket.on('data', (chunk: Buffer) => {
    fromSocket += chunk.length;
    if (!stream.write(chunk) && stream.writableLength >= stream.writableHighWaterMark) socket.pause();
  });
  stream.on('drain', () => socket.resume());
  // A tunnel stream also withholds its credit while the socket cannot drain: what the peer may
  // have in flight then includes the socket's write queue (docs/STREAMS.md, "Memory per key").
  const holdCredit = (held: boolean): void => (stream as Partial<CreditHolder>).holdCredit?.(held);
  stream.on('data', (chunk: Buffer) => {
    toSocket += chunk.length;
    if (!socket.write(chunk) && socket.writableLength >= socket.writableHighWaterMark) {
      holdCredit(true);
      stream.pause();
    }
  });
  socket.on('drain', () => {
    holdCredit(false);
    stream.resume();
  });

  socket.on('end', () => {
    if (stream.destroyed) return;
    // libuv reports a peer's RST that arrives behind unread data as a plain end of stream (on
    // POLLHUP after a partial read it signals EOF without reading the pending ECONNRESET). A
    // zero-length write makes the kernel report that pending error (tcp_sendmsg checks it first):
    // a reset then resets the stream (the 'error' listener below) instead of passing on a FIN.
    // The write completes after anything already queued, so the FIN keeps its place.
    if (socket.writable && !socket.writableEnded) {
      socket.write(EMPTY, (err) => {
        if (err == null && !stream.destroyed) stream.end();
      });
    } else {
      stream.end();
    }
  });
  stream.on('end', () => {
    if (!socket.destroyed) socket.end();
  });

  stream.on('error', (err: Error) => {
    if (how === 'closed') {
      how = 'stream-error';
      error = err;
    }
    if (!socket.destroyed) socket.resetAndDestroy();
  });
  socket.on('error', (err: Error) => {
    if (how === 'closed') {
      how = 'socket-error';
      error = err;
    }
    if (!stream.destroyed) stream.destroy(err);
  });

  const onSocketClose = (): void => {
    if (socketClosed) return;
    socketClosed = true;
    // A socket that went away before both FINs were carried takes the stream down (a reset).
    if (!stream.destroyed && !(stream.writableEnded && stream.readableEnded)) {
      if (how === 'closed') how = 'reset';
      stream.destroy(error);
    }
    report();
  };
  const onStreamClose = (): void => {
    if (streamClosed) return;
    streamClosed = true;
    // A stream that closed without both ends carried was reset: never a clean FIN (SECURITY.md #10).
    if (!socket.destroyed && !(socket.writableEnded && socket.readableEnded)) {
      if (how === 'closed') how = 'reset';
      socket.resetAndDestroy();
    }
    report();
  };
  socket.on('close', onSocketClose);
  stream.on('close', onStreamClose);
  // Either side may have gone before we were called: its 'close' will not come again.
  if (socket.closed) onSocketClose();
  if (stream.closed) onStreamClose();
}
