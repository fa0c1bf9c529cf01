/**
 * The dialing side of the transport: a `ws` client for ws:// or wss:// URLs, optionally through an
 * HTTP CONNECT proxy, with one deadline over proxy, TCP, TLS and the upgrade. The layer above sees
 * the 101 response headers before the WebSocket opens (to finish its handshake there) and can
 * abort by throwing; a non-101 answer becomes an UpgradeRefusedError carrying status and headers.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { isIP } from 'node:net';
import { WebSocket, type ClientOptions } from 'ws';
import { SessionError } from '../errors.js';
import { connectViaProxy } from './connect-proxy.js';
import { WebSocketChannel } from './websocket-channel.js';
import { commonWsOptions, generateZeroMask } from './ws-options.js';

/** The server answered the upgrade with something other than 101. */
export class UpgradeRefusedError extends SessionError {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The URL dialed, as shown in messages. */
  readonly url: string | undefined;
  constructor(status: number, headers: IncomingHttpHeaders, url?: string) {
    super(
      'ERR_TRANSPORT',
      url === undefined
        ? `server refused the upgrade: HTTP ${status}`
        : `the server at ${url} answered HTTP ${status} instead of a WebSocket upgrade: not a twoway server, or the wrong port or path`,
    );
    this.status = status;
    this.headers = headers;
    this.url = url;
  }
}

export interface TransportDialOptions {
  readonly url: string;
  readonly subprotocol: string;
  /** Extra upgrade request headers (e.g. the first handshake message). */
  readonly headers: Readonly<Record<string, string>>;
  readonly maxPayloadBytes: number;
  readonly highWaterBytes?: number;
  readonly tls?: { readonly ca?: string | Buffer; readonly rejectUnauthorized?: boolean };
  /** http://host:port of a CONNECT proxy. */
  readonly proxy?: string;
  /** Deadline for everything up to the open WebSocket. */
  readonly timeoutMs: number;
  /** Sees the 101 headers before the socket opens; throwing aborts the dial with that error. */
  onUpgradeResponse(headers: IncomingHttpHeaders): void;
}

function parseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SessionError('ERR_TRANSPORT', `not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new SessionError('ERR_TRANSPORT', `unsupported URL scheme ${url.protocol} (ws: or wss:)`);
  }
  return url;
}

/** A URL for messages: scheme, host, port and path (config URLs carry no credentials). */
function shownUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * One line that says what a failed dial means, for the mix-ups people make: wss:// to a plain
 * port (OpenSSL's "wrong version number"), ws:// to a TLS port (a hang-up, or TLS bytes where HTTP
 * was expected), something that does not speak HTTP at all, an untrusted certificate. Other
 * errors keep their own text.
 */
export function describeDialError(err: Error & { code?: string; reason?: string }, url: URL): string {
  const where = shownUrl(url);
  const secure = url.protocol === 'wss:';
  const text = `${err.reason ?? ''} ${err.message}`;
  if (secure && /wrong version number|packet length too long|record layer failure|http request/i.test(text)) {
    return `the server at ${where} does not speak TLS: use ws:// or check the port`;
  }
  if (secure && (err.code === 'EPROTO' || err.code?.startsWith('ERR_SSL_') === true)) {
    return `TLS with the server at ${where} failed: ${(err.reason ?? err.message.split('\n')[0] ?? '').slice(0, 120)}`;
  }
  if (secure && /CERT|SELF_SIGNED|UNABLE_TO_|ALTNAME/.test(err.code ?? '')) {
    return `the server at ${where} has a TLS certificate this client does not trust (${err.message.split('\n')[0]!.split('; ')[0]!.slice(0, 120)}): set [client].ca_file or check the host name`;
  }
  if (!secure && err.code === 'ECONNRESET' && /socket hang up/.test(err.message)) {
    return `the server at ${where} closed the connection without an HTTP answer: if it serves TLS, use wss://`;
  }
  if (err.code?.startsWith('HPE_') === true) {
    return secure
      ? `the server at ${where} does not speak HTTP: check the host and port`
      : `the server at ${where} does not speak HTTP (a TLS port? use wss://), or it is not a twoway server: check the host and port`;
  }
  return `connect to ${url.host}: ${err.message.split('\n')[0]}`;
}

/** Dials and resolves with an open channel, or rejects with a SessionError. */
export async function dialTransport(options: TransportDialOptions): Promise<WebSocketChannel> {
  const url = parseUrl(options.url);
  const secure = url.protocol === 'wss:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  const abort = new AbortController();
  let ws: WebSocket | undefined;
  let tunnel: Duplex | undefined;

  const timeout = new Promise<never>((_, reject) => {
    const timer = setTimeout(() => {
      abort.abort();
      tunnel?.destroy();
      ws?.terminate();
      reject(new SessionError('ERR_SESSION_HANDSHAKE_TIMEOUT', `connect to ${url.host} timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    timer.unref();
    abort.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  });
  timeout.catch(() => {});

  const attempt = async (): Promise<WebSocketChannel> => {
    const wsOptions: ClientOptions = {
      ...commonWsOptions(options.maxPayloadBytes),
      generateMask: generateZeroMask,
      headers: { ...options.headers },
      followRedirects: false,
      ...(options.tls?.ca !== undefined ? { ca: options.tls.ca } : {}),
      ...(options.tls?.rejectUnauthorized !== undefined ? { rejectUnauthorized: options.tls.rejectUnauthorized } : {}),
    };
    if (options.proxy !== undefined) {
      const raw = await connectViaProxy(options.proxy, host, port, abort.signal);
      tunnel = raw;
      const socket: Duplex = secure
        ? tls.connect({
            socket: raw,
            ...(isIP(host) === 0 ? { servername: host } : {}),
            ...(options.tls?.ca !== undefined ? { ca: options.tls.ca } : {}),
            ...(options.tls?.rejectUnauthorized !== undefined ? { rejectUnauthorized: options.tls.rejectUnauthorized } : {}),
          })
        : raw;
      socket.on('error', () => {});
      tunnel = socket;
      wsOptions.createConnection = () => socket as never;
    }
    if (abort.signal.aborted) throw new SessionError('ERR_SESSION_HANDSHAKE_TIMEOUT', 'connect aborted');
    return new Promise<WebSocketChannel>((resolve, reject) => {
      const socket = new WebSocket(url, [options.subprotocol], wsOptions);
      ws = socket;
      let failure: Error | undefined;
      socket.on('error', (err) => {
        reject(failure ?? new SessionError('ERR_TRANSPORT', describeDialError(err, url), { cause: err }));
      });
      socket.on('close', () => reject(failure ?? new SessionError('ERR_TRANSPORT', `connect to ${url.host}: closed`)));
      socket.on('unexpected-response', (req, res) => {
        failure = new UpgradeRefusedError(res.statusCode ?? 0, res.headers, shownUrl(url));
        res.resume();
        req.destroy();
        res.socket?.destroy();
        reject(failure);
      });
      socket.on('upgrade', (res) => {
        try {
          options.onUpgradeResponse(res.headers);
        } catch (err) {
          failure = err instanceof Error ? err : new SessionError('ERR_TRANSPORT', String(err));
          res.socket?.destroy();
          socket.terminate();
          reject(failure);
        }
      });
      socket.on('open', () => {
        if (socket.protocol !== options.subprotocol) {
          failure = new SessionError(
            'ERR_SESSION_PROTOCOL_VERSION',
            `server selected subprotocol ${JSON.stringify(socket.protocol)}, expected ${options.subprotocol}`,
          );
          socket.terminate();
          reject(failure);
          return;
        }
        resolve(
          new WebSocketChannel(socket, {
            remoteAddress: url.host,
            ...(options.highWaterBytes !== undefined ? { highWaterBytes: options.highWaterBytes } : {}),
          }),
        );
      });
    });
  };

  try {
    return await Promise.race([attempt(), timeout]);
  } catch (err) {
    tunnel?.destroy();
    ws?.terminate();
    throw err;
  } finally {
    abort.abort();
  }
}
