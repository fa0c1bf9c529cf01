/**
 * A local port forward (`ssh -L` style): every connection accepted on the listen address opens a
 * tunnel stream to one fixed target. A refused or failed stream resets the connection.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeSocketStream, type PipeResult } from './pipe.js';

/** Opens a stream to `target`; the result emits 'open' when accepted, or errors when refused. */
export type StreamOpener = (target: string) => Duplex;

/** The logger calls the forwarders make (a pino logger fits). */
export interface ForwardLogger {
  debug(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** A listening forwarder: its bound address, and close() (stops listening, resets open connections). */
export interface ListenerHandle {
  address(): { host: string; port: number } | null;
  close(): Promise<void>;
}

/** Listen backlog: at least the connect concurrency of a busy client. */
export const LISTEN_BACKLOG = 1024;

export interface LocalForwardOptions {
  readonly listen: { readonly host: string; readonly port: number };
  readonly target: string;
  readonly open: StreamOpener;
  readonly logger?: ForwardLogger;
  readonly onConnection?: (result: PipeResult) => void;
}

/** Binds a TCP server; resolves once listening. Shared by the forwarders. */
export function listenTcp(listen: { host: string; port: number }, onSocket: (socket: net.Socket) => void): Promise<ListenerHandle> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, (socket) => {
    socket.on('error', () => {});
    onSocket(socket);
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: listen.host, port: listen.port, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      server.on('error', () => {});
      resolve({
        address() {
          const a = server.address();
          return a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
        },
        close() {
          return new Promise<void>((done) => {
            server.close(() => done());
            for (const s of sockets) s.resetAndDestroy();
          });
        },
      });
    });
  });
}

/** Starts a local forward; resolves once listening. Each connection gets its own stream to `target`. */
export function startLocalForward(options: LocalForwardOptions): Promise<ListenerHandle> {
  return listenTcp(options.listen, (socket) => {
    const stream = options.open(options.target);
    pipeSocketStream(socket, stream, {
      onDone: (result) => {
        options.logger?.debug({ target: options.target, ...result, error: result.error?.message }, 'forwarded connection closed');
        options.onConnection?.(result);
      },
    });
  });
}
