/**
 * Raw HTTP upgrade requests to a real server, for tests of the edge in front of the handshake:
 * trusted proxies (X-Forwarded-For, PROXY v2) and the upgrade fuzz. Plus the two kinds of
 * reverse proxy a real client can be sent through.
 */
import net from 'node:net';
import type { KeyPair } from '../../src/crypto/keys.js';
import { encodeBase64Url } from '../../src/session/base64url.js';
import { createInitiation } from '../../src/session/handshake.js';
import { HANDSHAKE_HEADER, WIRE, ZERO_PSK } from '../../src/session/wire.js';

export interface RawAnswer {
  /** The HTTP status, or 'closed' when the server closed without answering. */
  readonly status: number | 'closed';
  /** Everything received. */
  readonly raw: Buffer;
  /** Still open (101 answers are held open until `close`). */
  readonly socket: net.Socket;
}

/** A valid message 1 from `client` to the server key, base64url, for the handshake header. */
export function validHandshakeHeader(client: KeyPair, serverPublicKey: Uint8Array): string {
  return encodeBase64Url(createInitiation(WIRE, client, serverPublicKey, ZERO_PSK).message);
}

/** The request line and headers of a WebSocket upgrade to /twoway with the right subprotocol. */
export function upgradeRequest(headers: Readonly<Record<string, string>> = {}, path = '/twoway'): string {
  const all: Record<string, string> = {
    Host: 'localhost',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Protocol': WIRE.subprotocol,
    [HANDSHAKE_HEADER]: 'AAAA',
    ...headers,
  };
  return `GET ${path} HTTP/1.1\r\n${Object.entries(all)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
}

/**
 * Sends `bytes` on a fresh connection and waits for the first answer's header (or the close);
 * with `untilClose`, for the close, so `raw` holds everything the server wrote.
 */
export function sendRaw(port: number, bytes: Buffer | string, timeoutMs = 5_000, untilClose = false): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let raw = Buffer.alloc(0);
    let done = false;
    let status: number | 'closed' = 'closed';
    const finish = (answer: number | 'closed'): void => {
      if (done) return;
      if (untilClose && answer !== 'closed') {
        status = answer;
        return;
      }
      if (answer === 'closed' && status !== 'closed') answer = status;
      done = true;
      clearTimeout(timer);
      resolve({ status: answer, raw, socket });
    };
    const timer = setTimeout(() => finish('closed'), timeoutMs);
    socket.on('error', () => {});
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (c: Buffer) => {
      raw = Buffer.concat([raw, c]);
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(raw.toString('latin1'));
      if (m && raw.includes('\r\n\r\n')) finish(Number(m[1]));
    });
    socket.on('close', () => finish('closed'));
  });
}

/** Opens a connection, sends `prefix` (or nothing) and keeps it open; resolves once connected. */
export async function holdOpen(port: number, prefix?: Buffer): Promise<{ socket: net.Socket; closed: () => boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  let closed = false;
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  if (prefix) socket.write(prefix);
  return { socket, closed: () => closed };
}

/** A PROXY protocol v2 header naming `client` (IPv4 or IPv6) as the source. */
export function proxyV2Header(client: { ip: string; port: number }): Buffer {
  const v6 = client.ip.includes(':');
  const addr = (ip: string): Buffer => {
    if (!v6) return Buffer.from(ip.split('.').map(Number));
    const [head = '', tail = ''] = ip.split('::');
    const h = head === '' ? [] : head.split(':');
    const t = tail === '' ? [] : tail.split(':');
    const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
    const b = Buffer.alloc(16);
    groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
    return b;
  };
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(client.port, 0);
  ports.writeUInt16BE(8443, 2);
  const body = Buffer.concat([addr(client.ip), addr(v6 ? '::1' : '127.0.0.1'), ports]);
  const fixed = Buffer.from([0x21, v6 ? 0x21 : 0x11, 0, 0]);
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'), fixed, body]);
}

/**
 * A TCP reverse proxy on loopback in front of `port`: 'xff' adds an X-Forwarded-For header to the
 * request, 'proxy-v2' sends a PROXY v2 header first; both name `client` as the source.
 */
export async function startReverseProxy(
  port: number,
  mode: 'xff' | 'proxy-v2',
  client: { ip: string; port: number },
): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((inbound) => {
    inbound.on('error', () => {});
    const outbound = net.connect(port, '127.0.0.1');
    outbound.on('error', () => inbound.destroy());
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
    if (mode === 'proxy-v2') {
      outbound.write(proxyV2Header(client));
      inbound.pipe(outbound);
      outbound.pipe(inbound);
      return;
    }
    let head = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      head = Buffer.concat([head, c]);
      const eol = head.indexOf('\r\n');
      if (eol < 0) return;
      inbound.off('data', onData);
      outbound.write(Buffer.concat([head.subarray(0, eol + 2), Buffer.from(`X-Forwarded-For: ${client.ip}\r\n`), head.subarray(eol + 2)]));
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    };
    inbound.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port };
}
