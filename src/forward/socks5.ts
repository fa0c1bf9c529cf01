/**
 * A local SOCKS5 listener (`ssh -D` style, CONNECT only). Host names are not resolved here: they
 * travel to the server, which resolves and checks them. The reply is sent only once the tunnel
 * stream is open or refused, so the application sees the real outcome.
 */
import type net from 'node:net';
import { toReasonCode, type ReasonCode } from '../mux/reason.js';
import type { StreamOpener } from './local-forward.js';
import { listenLocal, type ForwardLogger, type ListenerHandle, type LocalAccess, type LocalListen } from './local-listener.js';
import { pipeSocketStream } from './pipe.js';
import { AUTH_NONE, AUTH_NO_ACCEPTABLE, CMD_CONNECT, SOCKS_VERSION, Socks5Parser, SocksReply, encodeReply } from './socks5-parser.js';

/** A client must finish the SOCKS handshake within this long. */
export const SOCKS_HANDSHAKE_TIMEOUT_MS = 10_000;

const REPLY_FOR: Readonly<Record<ReasonCode, number>> = {
  'not-permitted': SocksReply.notAllowed,
  'connection-refused': SocksReply.connectionRefused,
  unreachable: SocksReply.hostUnreachable,
  'dns-failure': SocksReply.hostUnreachable,
  timeout: SocksReply.ttlExpired,
  limit: SocksReply.generalFailure,
  'device-offline': SocksReply.hostUnreachable,
  error: SocksReply.generalFailure,
  cancel: SocksReply.generalFailure,
  'tunnel-closed': SocksReply.networkUnreachable,
  unverified: SocksReply.notAllowed,
};

export interface SocksOptions {
  readonly listen: LocalListen;
  /** Who may connect (default: only this user; see src/forward/local-listener.ts). */
  readonly access?: LocalAccess;
  readonly open: StreamOpener;
  readonly logger?: ForwardLogger;
  /** Bound on the greeting and request (default SOCKS_HANDSHAKE_TIMEOUT_MS). */
  readonly handshakeTimeoutMs?: number;
}

/** Listens for SOCKS5 CONNECT requests and opens one tunnel stream per request. */
export function startSocksServer(options: SocksOptions): Promise<ListenerHandle> {
  return listenLocal(
    { listen: options.listen, kind: 'socks', ...(options.access ? { access: options.access } : {}), ...(options.logger ? { logger: options.logger } : {}) },
    (socket) => serveSocks(socket, options),
  );
}

function serveSocks(socket: net.Socket, options: SocksOptions): void {
  const parser = new Socks5Parser();
  const limitMs = options.handshakeTimeoutMs ?? SOCKS_HANDSHAKE_TIMEOUT_MS;
  const timer = setTimeout(() => fail(`no request within ${limitMs} ms`), limitMs).unref();
  socket.once('close', () => clearTimeout(timer));
  // A client that gives up (FIN) during the handshake gets no half-open socket kept for it.
  const onEarlyEnd = (): void => fail('client closed during the handshake');
  socket.once('end', onEarlyEnd);
  /** Ends the handshake: with a last answer (flushed, then FIN) or, for garbage, a plain close. */
  const fail = (why: string, answer?: Buffer): void => {
    clearTimeout(timer);
    options.logger?.debug({ err: why }, 'SOCKS5 request refused');
    socket.off('data', onData);
    socket.off('end', onEarlyEnd);
    if (answer !== undefined) socket.end(answer);
    else socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    try {
      let event = parser.push(chunk);
      for (;;) {
        if (event.kind === 'need-more') return;
        if (event.kind === 'greeting') {
          if (!event.acceptable) {
            fail('no acceptable authentication method', Buffer.from([SOCKS_VERSION, AUTH_NO_ACCEPTABLE]));
            return;
          }
          socket.write(Buffer.from([SOCKS_VERSION, AUTH_NONE]));
          event = parser.push(new Uint8Array(0));
          continue;
        }
        if (event.command !== CMD_CONNECT) {
          fail(`command ${event.command} not supported`, encodeReply(SocksReply.commandNotSupported));
          return;
        }
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('end', onEarlyEnd);
        socket.pause();
        connect(socket, event.target, parser.rest(), options);
        return;
      }
    } catch (err) {
      fail((err as Error).message);
    }
  };
  socket.on('data', onData);
}

function connect(socket: net.Socket, target: string, early: Buffer, options: SocksOptions): void {
  const stream = options.open(target);
  let answered = false;
  stream.once('open', () => {
    answered = true;
    socket.write(encodeReply(SocksReply.succeeded));
    pipeSocketStream(socket, stream);
    socket.resume();
  });
  stream.on('error', (err: Error & { reason?: unknown }) => {
    if (answered) return;
    answered = true;
    const reason = toReasonCode(err.reason);
    options.logger?.debug({ target, reason }, 'SOCKS5 stream refused');
    socket.end(encodeReply(REPLY_FOR[reason]));
  });
  socket.once('close', () => {
    if (!answered) stream.destroy();
  });
  if (early.length > 0) stream.write(early);
}
