/**
 * An HTTP CONNECT tunnel (RFC 9110 §9.3.6) through a forward proxy, built on http.request so no
 * dependency is needed. The resulting socket is handed to `ws` through `createConnection`.
 */
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { SessionError } from '../errors.js';
import { formatHostPort } from '../lib/host-port.js';

/** Opens `host:port` through the proxy at `proxyUrl` (http://[user:pass@]host:port). */
export function connectViaProxy(proxyUrl: string, host: string, port: number, signal: AbortSignal): Promise<Socket> {
  let proxy: URL;
  try {
    proxy = new URL(proxyUrl);
  } catch {
    return Promise.reject(new SessionError('ERR_TRANSPORT', 'proxy: not a URL'));
  }
  if (proxy.protocol !== 'http:') {
    return Promise.reject(new SessionError('ERR_TRANSPORT', `proxy: unsupported scheme ${proxy.protocol}`));
  }
  const authority = formatHostPort(host, port);
  const headers: Record<string, string> = { Host: authority };
  if (proxy.username !== '') {
    const user = decodeURIComponent(proxy.username);
    const pass = decodeURIComponent(proxy.password);
    headers['Proxy-Authorization'] = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  }
  return new Promise<Socket>((resolve, reject) => {
    const req = http.request({
      host: proxy.hostname.replace(/^\[|\]$/g, ''),
      port: proxy.port === '' ? 80 : Number(proxy.port),
      method: 'CONNECT',
      path: authority,
      headers,
      agent: false,
    });
    let settled = false;
    // Abort only an unfinished CONNECT: once tunnelled, the socket belongs to the caller.
    const onAbort = (): void => {
      if (!settled) req.destroy(new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('connect', (res, socket, head) => {
      settled = true;
      signal.removeEventListener('abort', onAbort);
      socket.on('error', () => {});
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new SessionError('ERR_TRANSPORT', `proxy refused CONNECT ${authority}: HTTP ${res.statusCode}`));
        return;
      }
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.on('error', (err) => {
      reject(new SessionError('ERR_TRANSPORT', `proxy ${proxy.host}: ${err.message}`, { cause: err }));
    });
    req.end();
  });
}
