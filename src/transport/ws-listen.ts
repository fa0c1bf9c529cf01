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
import * as net from 'node:net';
import { WebSocketServer } from 'ws';
import { SessionError } from '../errors.js';
import { refuseUpgrade } from './http-responses.js';
import { parseProxyV2 } from './proxy-protocol.js';
import { unmapIPv4, type TrustedProxies } from './trusted-proxies.js';
import { WebSocketChannel } from './websocket-channel.js';
import { commonWsOptions } from './ws-options.js';
import { formatHostPort } from '../lib/host-port.js';

/** SECURITY.md defaults for the HTTP server (pitfall #7: check headers every second). */
export const HTTP_HEADERS_TIMEOUT_MS = 5_000;
export const HTTP_REQUEST_TIMEOUT_MS = 10_000;
export const HTTP_CONNECTIONS_CHECKING_INTERVAL_MS = 1_000;
export const HTTP_MAX_HEADERS_COUNT = 100;
export const HTTP_MAX_HEADER_BYTES = 16 * 1024;

/** A Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 section 4.1). */
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;

/** Response header naming the subprotocol this server speaks (sent with 426). */
export const PROTOCOL_HEADER = 'Twoway-Protocol';

/** A trusted proxy's PROXY v2 header must arrive within this long of the TCP accept. */
export const PROXY_HEADER_TIMEOUT_MS = 5_000;

/** One accepted TCP connection, before and after its upgrade. */
export interface TransportConnection {
  /** "ip" of the client: the socket's peer, or as a trusted proxy reported it. */
  readonly remoteIp: string;
  /** "ip:port" (IPv6 in brackets; "ip" alone from X-Forwarded-For) for logs. */
  readonly remoteAddress: string;
  /** "ip:port" of the trusted proxy the connection came through. */
  readonly via?: string;
  /**
   * True from the TCP accept to the upgrade of a connection from a trusted proxy whose client
   * address comes with the request (X-Forwarded-For): remoteIp is still the proxy's.
   */
  readonly addressPending?: boolean;
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
  /**
   * Whose word on the client address is taken: with 'proxy-v2' a trusted address must begin
   * with a PROXY protocol v2 header (plain ws:// only); with 'x-forwarded-for' its upgrade's
   * X-Forwarded-For names the client. Without it, the socket's peer is the client.
   */
  readonly proxies?: { readonly trusted: TrustedProxies; readonly protocol: 'proxy-v2' | 'x-forwarded-for' };
  /** A trusted proxy's connection failed its PROXY header (for the operator's log). */
  onProxyHeaderRefused?(remoteAddress: string, why: string): void;
}

export interface TransportServer {
  address(): { host: string; port: number };
  /** Stops listening and destroys every connection still open. */
  close(): Promise<void>;
}

function formatAddress(ip: string, port: number | undefined): string {
  return formatHostPort(ip, port ?? 0);
}

/** A connection's fields; listen.ts alone rewrites them (a trusted proxy's client address). */
type MutableConnection = { -readonly [K in keyof TransportConnection]: TransportConnection[K] };

function connectionKey(socket: Socket | Duplex): string {
  const s = socket as Socket;
  return `${s.remoteAddress ?? '?'}|${s.remotePort ?? 0}`;
}

function offeredProtocols(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
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
  if (options.proxies?.protocol === 'proxy-v2' && options.tls !== undefined) {
    throw new SessionError('ERR_TRANSPORT', 'the PROXY protocol is supported for plain ws:// only: terminate TLS at the proxy');
  }
  const server =
    options.tls === undefined ? http.createServer(serverOptions) : https.createServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key });
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
  // A request ws itself refuses (a malformed subprotocol or extensions header) gets the same bare
  // 400 as ours: without this listener ws answers with a text body naming the fault.
  wss.on('wsClientError', (_err: Error, socket: Duplex) => refuseUpgrade(socket, 400));

  const connections = new Map<string, { socket: Socket; connection: MutableConnection }>();
  const proxies = options.proxies;
  /** Client addresses from PROXY v2 headers, for the 'connection' handler below. */
  const proxied = new WeakMap<Socket, { ip: string; port: number } | 'local'>();

  server.on('connection', (socket: Socket) => {
    socket.on('error', () => {}); // SECURITY.md #3: resets from the peer must not crash us.
    const ip = socket.remoteAddress ?? '?';
    const connection: MutableConnection = {
      remoteIp: ip,
      remoteAddress: formatAddress(ip, socket.remotePort),
      destroy: () => socket.destroy(),
    };
    const fromProxy = proxied.get(socket);
    if (fromProxy !== undefined) {
      connection.via = connection.remoteAddress;
      if (fromProxy !== 'local') {
        connection.remoteIp = unmapIPv4(fromProxy.ip);
        connection.remoteAddress = formatAddress(connection.remoteIp, fromProxy.port);
      }
    } else if (proxies?.protocol === 'x-forwarded-for' && proxies.trusted.trusts(ip)) {
      connection.via = connection.remoteAddress;
      connection.addressPending = true;
    }
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
  /** Sockets that already got their 404: a parse error in what follows gets no second answer. */
  const answered = new WeakSet<Duplex>();
  server.on('clientError', (_err: Error, socket: Duplex) => {
    if (socket.destroyed) return;
    if (answered.has(socket)) socket.destroy();
    else socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  server.on('request', (req: IncomingMessage, res: http.ServerResponse) => {
    answered.add(req.socket);
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
    const connection = tracked.connection;
    if (connection.addressPending === true) {
      // X-Forwarded-For from a trusted proxy (Node joins repeated headers with ", ").
      const forwarded = req.headers['x-forwarded-for'];
      connection.remoteIp = proxies!.trusted.clientFromForwardedFor(typeof forwarded === 'string' ? forwarded : undefined, connection.remoteIp);
      connection.remoteAddress = connection.remoteIp.includes(':') ? `[${connection.remoteIp}]` : connection.remoteIp;
      connection.addressPending = false;
    }
    const upgrade = req.headers.upgrade;
    if (req.method !== 'GET' || pathOf(req.url) !== options.path || upgrade === undefined || upgrade.toLowerCase() !== 'websocket') {
      refuseUpgrade(socket, 404);
      return;
    }
    // What ws would refuse, refused here first, bare and before any handshake work (RFC 6455 4.1).
    const key = req.headers['sec-websocket-key'];
    if (req.headers['sec-websocket-version'] !== '13' || key === undefined || !WEBSOCKET_KEY.test(key)) {
      refuseUpgrade(socket, 400);
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

  // With PROXY v2, a plain TCP server in front reads the header of trusted connections first.
  const front = proxies?.protocol === 'proxy-v2' ? net.createServer((socket) => acceptProxied(socket)) : server;
  const acceptProxied = (socket: Socket): void => {
    socket.on('error', () => {});
    const peer = socket.remoteAddress ?? '?';
    if (!proxies!.trusted.trusts(peer)) {
      // Anyone else speaks plain HTTP; a PROXY header from them is garbage to the HTTP parser.
      server.emit('connection', socket);
      return;
    }
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => refuse('no PROXY header in time'), PROXY_HEADER_TIMEOUT_MS).unref();
    const refuse = (why: string): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      options.onProxyHeaderRefused?.(formatAddress(peer, socket.remotePort), why);
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const result = parseProxyV2(received);
      if (result.kind === 'need-more') return;
      if (result.kind === 'invalid') {
        refuse(result.why);
        return;
      }
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      proxied.set(socket, result.client ?? 'local');
      const rest = received.subarray(result.headerBytes);
      if (rest.length > 0) socket.unshift(rest);
      server.emit('connection', socket);
      socket.resume();
    };
    socket.on('data', onData);
    socket.once('close', () => clearTimeout(timer));
  };

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new SessionError('ERR_TRANSPORT', `listen ${options.host}:${options.port}: ${err.message}`, { cause: err }));
    };
    front.once('error', onError);
    front.listen(options.port, options.host, () => {
      front.off('error', onError);
      resolve();
    });
  });
  front.on('error', () => {});
  server.on('error', () => {});
  // The http server never listens itself: its 'listening' arms the headers and request
  // timeout checks (SECURITY.md #7) for the connections handed to it.
  if (front !== server) server.emit('listening');

  let closing: Promise<void> | undefined;
  return {
    address() {
      const a = front.address();
      if (a === null || typeof a === 'string') return { host: options.host, port: options.port };
      return { host: a.address, port: a.port };
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        front.close(() => resolve());
        if (front !== server) server.close();
        for (const { socket } of connections.values()) socket.destroy();
        wss.close();
      });
      return closing;
    },
  };
}
