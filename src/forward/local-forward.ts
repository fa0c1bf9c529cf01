/**
 * A local port forward (`ssh -L` style): every connection accepted on the listen address opens a
 * tunnel stream to one fixed target. A refused or failed stream resets the connection.
 */
import type { Duplex } from 'node:stream';
import { listenLocal, type ForwardLogger, type ListenerHandle, type LocalAccess, type LocalListen } from './local-listener.js';
import type { PipeResult } from './pipe.js';
import { socketIntoStream } from './socket-into-stream.js';

export type { ForwardLogger, ListenerHandle } from './local-listener.js';

/** Opens a stream to `target`; the result emits 'open' when accepted, or errors when refused. */
export type StreamOpener = (target: string) => Duplex;

export interface LocalForwardOptions {
  readonly listen: LocalListen;
  /** Who may connect (default: only this user; see src/forward/local-listener.ts). */
  readonly access?: LocalAccess;
  readonly target: string;
  readonly open: StreamOpener;
  readonly logger?: ForwardLogger;
  readonly onConnection?: (result: PipeResult) => void;
}

/** Starts a local forward; resolves once listening. Each connection gets its own stream to `target`. */
export function startLocalForward(options: LocalForwardOptions): Promise<ListenerHandle> {
  return listenLocal(
    { listen: options.listen, kind: 'forward', ...(options.access ? { access: options.access } : {}), ...(options.logger ? { logger: options.logger } : {}) },
    (socket) => {
      socketIntoStream(socket, () => options.open(options.target), {
        onDone: (result) => {
          options.logger?.debug({ target: options.target, ...result, error: result.error?.message }, 'forwarded connection closed');
          options.onConnection?.(result);
        },
      });
    },
  );
}
