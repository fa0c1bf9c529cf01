/**
 * An accepted TCP connection carried into a tunnel stream: the one piece behind a local forward
 * (src/forward/local-forward.ts: the client's listener opens a stream to its fixed target) and a
 * reverse listener (src/device/reverse-listeners.ts: the server's port opens a stream into a
 * device's session). The stream is opened for the socket and the two are piped at once (bytes the
 * application sends early wait in the stream until the far side accepts); the owner hears whether
 * the far side accepted or refused, and how the pair ended.
 *
 * A refusal, a reset or a lost session resets the socket (src/forward/pipe.ts, SECURITY.md #10):
 * the application never takes a refused or cut connection for a clean end.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeSocketStream, type PipeResult } from './pipe.js';

export interface SocketIntoStreamHooks {
  /** Sees every chunk carried, both ways (`twoway server --debug-relay-capture`). */
  tap?(chunk: Buffer): void;
  /** The far side accepted the stream (its 'open'). */
  onOpen?(): void;
  /** The stream failed before the far side accepted it: a refusal, with its reason on `err`. */
  onRefused?(err: Error): void;
  /** The socket and the stream have both closed; `opened` says whether the far side ever accepted. */
  onDone?(result: PipeResult, opened: boolean): void;
}

/**
 * Opens a stream for `socket` with `open` and pipes the two (see the file header). Returns the
 * stream, or undefined when `open` threw (no stream: the socket is reset, no hook is called).
 */
export function socketIntoStream(socket: net.Socket, open: () => Duplex, hooks: SocketIntoStreamHooks = {}): Duplex | undefined {
  let stream: Duplex;
  try {
    stream = open();
  } catch {
    socket.resetAndDestroy();
    return undefined;
  }
  const tap = hooks.tap;
  if (tap) {
    socket.on('data', (c: Buffer) => tap(c));
    stream.on('data', (c: Buffer) => tap(c));
  }
  let opened = false;
  stream.once('open', () => {
    opened = true;
    hooks.onOpen?.();
  });
  stream.once('error', (err: Error) => {
    if (!opened) hooks.onRefused?.(err);
  });
  pipeSocketStream(socket, stream, { onDone: (result) => hooks.onDone?.(result, opened) });
  return stream;
}
