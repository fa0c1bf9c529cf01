/**
 * The listening side of the transport: an http(s) server whose 'upgrade' handler decides, before
 * any WebSocket exists, whether to switch protocols. `ws` runs in noServer mode and only completes
 * upgrades the layer above accepted. Anything but a WebSocket upgrade on the configured path gets
 * a bare 404 (no version banner). The same code serves plain ws:// behind a TLS-terminating proxy.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { SessionError } from '../errors.js';
import { refuseUpgrade } from './http-responses.js';
import { WebSocketChannel } from './websocket-channel.js';
import { commonWsOptions } from './ws-options.js';

/** SECURITY.md defaults for the HTTP server (pitfall #7: check headers every second). */
export const HTTP_HEADERS_TIMEOUT_MS = 5_000;
export const HTTP_REQUEST_TIMEOUT_MS = 10_000;
export const HTTP_CONNECTIONS_CHECKING_INTERVAL_MS = 1_000;
export const HTTP_MAX_HEADERS_COUNT = 100;
export const HTTP_MAX_HEADER_BYTES = 16 * 1024;

/** Response header naming the subprotocol this server speaks (sent with 426). */
export const PROTOCOL_HEADER = 'Twoway-Protocol';

/** One accepted TCP connection, before and after its upgrade. */
export interface TransportConnection {
  /** "ip" of the peer (as the socket reports it). */
  readonly remoteIp: string;
  /** "ip:port" (IPv6 in brackets) for logs. */
  readonly remoteAddress: string;
  /** Drops the TCP connection at once. */
  destroy(): void;
}

export interface UpgradeRequest {
  readonly headers: IncomingHttpHeaders;
  readonly connection: TransportConnection;
}

export type UpgradeDecision =
  | {
      readonly kind: 'accept';
      /** Extra headers for the 101 response (e.g. the handshake reply). */
      readonly responseHeaders: Readonly<Record<string, string>>;
      onOpen(channel: WebSocketChannel): void;
    }
  | { readonly kind: 'refuse'; readonly status: number; readonly headers?: Readonly<Record<string, string>> };

export interface TransportListenOptions {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** The one WebSocket subprotocol accepted; an upgrade without it gets 426. */
  readonly subprotocol: string;
  readonly maxPayloadBytes: number;
  readonly highWaterBytes?: number;
  /** A TCP connection arrived. Return false to drop it at once (caps). */
  onConnection(connection: TransportConnection): boolean;
  /** The TCP connection went away (always called once for every accepted connection). */
  onConnectionClosed(connection: TransportConnection): void;
  /** A WebSocket upgrade on the right path with the right subprotocol. Synchronous. */
  onUpgrade(request: UpgradeRequest): UpgradeDecision;
  /** An upgrade offered other subprotocols (for the operator's log). */
  onProtocolMismatch?(connection: TransportConnection, offered: string): void;
}

export interface TransportServer {
  address(): { host: string; port: number };
  /** Stops listening and destroys every connection still open. */
  close(): Promise<void>;
}

function formatAddress(ip: string, port: number | undefined): string {
  return ip.includes(':') ? `[${ip}]:${port ?? 0}` : `${ip}:${port ?? 0}`;
}

function connectionKey(socket: Socket | Duplex): string {
  const s = socket as Socket;
  return `${s.remoteAddress ?? '?'}|${s.remotePort ?? 0}`;
}

function offeredProtocols(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
}

function pathOf(url: string | undefined): string | undefined {
  if (url === undefined || !url.startsWith('/')) return undefined;
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** Starts the http(s) server and resolves once it is listening. */
export async function listenTransport(options: TransportListenOptions): Promise<TransportServer> {
  const serverOptions = {
    headersTimeout: HTTP_HEADERS_TIMEOUT_MS,
    requestTimeout: HTTP_REQUEST_TIMEOUT_MS,
    connectionsCheckingInterval: HTTP_CONNECTIONS_CHECKING_INTERVAL_MS,
    maxHeaderSize: HTTP_MAX_HEADER_BYTES,
  };
  const server =
    options.tls === undefined
      ? http.createServer(serverOptions)
      : https.createServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key });
  server.maxHeadersCount = HTTP_MAX_HEADERS_COUNT;

  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    ...commonWsOptions(options.maxPayloadBytes),
    handleProtocols: (offered) => (offered.has(options.subprotocol) ? options.subprotocol : false),
  });
  const pendingHeaders = new WeakMap<IncomingMessage, Readonly<Record<string, string>>>();
  wss.on('headers', (headers, req) => {
    const extra = pendingHeaders.get(req);
    if (extra !== undefined) for (const [k, v] of Object.entries(extra)) headers.push(`${k}: ${v}`);
  });
  wss.on('error', () => {}); // noServer mode never emits it; a listener costs nothing.

  const connections = new Map<string, { socket: Socket; connection: TransportConnection }>();

  server.on('connection', (socket: Socket) => {
    socket.on('error', () => {}); // SECURITY.md #3: resets from the peer must not crash us.
    const ip = socket.remoteAddress ?? '?';
    const connection: TransportConnection = {
      remoteIp: ip,
      remoteAddress: formatAddress(ip, socket.remotePort),
      destroy: () => socket.destroy(),
    };
    if (!options.onConnection(connection)) {
      socket.destroy();
      return;
    }
    const key = connectionKey(socket);
    connections.set(key, { socket, connection });
    socket.once('close', () => {
      connections.delete(key);
      options.onConnectionClosed(connection);
    });
  });
  // TLS sockets wrap the tracked TCP socket; give them their own listener too.
  server.on('secureConnection', (socket: Socket) => socket.on('error', () => {}));
  server.on('tlsClientError', (_err: Error, socket: Duplex) => socket.destroy());
  server.on('clientError', (_err: Error, socket: Duplex) => {
    if (!socket.destroyed) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  server.on('request', (req: IncomingMessage, res: http.ServerResponse) => {
    req.resume();
    res.sendDate = false;
    res.shouldKeepAlive = false;
    res.writeHead(404, { 'Content-Length': '0', Connection: 'close' });
    res.end();
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    const tracked = connections.get(connectionKey(socket));
    if (tracked === undefined) {
      socket.destroy();
      return;
    }
    const upgrade = req.headers.upgrade;
    if (
      req.method !== 'GET' ||
      pathOf(req.url) !== options.path ||
      upgrade === undefined ||
      upgrade.toLowerCase() !== 'websocket'
    ) {
      refuseUpgrade(socket, 404);
      return;
    }
    const offered = req.headers['sec-websocket-protocol'];
    if (!offeredProtocols(offered).includes(options.subprotocol)) {
      options.onProtocolMismatch?.(tracked.connection, offered ?? '');
      refuseUpgrade(socket, 426, { [PROTOCOL_HEADER]: options.subprotocol });
      return;
    }
    let decision: UpgradeDecision;
    try {
      decision = options.onUpgrade({ headers: req.headers, connection: tracked.connection });
    } catch {
      socket.destroy();
      return;
    }
    if (decision.kind === 'refuse') {
      refuseUpgrade(socket, decision.status, decision.headers);
      return;
    }
    pendingHeaders.set(req, decision.responseHeaders);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const channel = new WebSocketChannel(ws, {
        remoteAddress: tracked.connection.remoteAddress,
        ...(options.highWaterBytes !== undefined ? { highWaterBytes: options.highWaterBytes } : {}),
      });
      decision.onOpen(channel);
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new SessionError('ERR_TRANSPORT', `listen ${options.host}:${options.port}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', () => {});

  let closing: Promise<void> | undefined;
  return {
    address() {
      const a = server.address();
      if (a === null || typeof a === 'string') return { host: options.host, port: options.port };
      return { host: a.address, port: a.port };
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const { socket } of connections.values()) socket.destroy();
        wss.close();
      });
      return closing;
    },
  };
}
