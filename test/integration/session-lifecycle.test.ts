import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { generateKeyPair } from '../../src/crypto/keys.js';
import { connectSecure } from '../../src/session/connect-secure.js';
import { consumeInitiation, createResponse } from '../../src/session/handshake.js';
import { decodeBase64Url, encodeBase64Url } from '../../src/session/base64url.js';
import type { RecordLayer } from '../../src/session/secure-session.js';
import { HANDSHAKE_HEADER, WIRE, ZERO_PSK } from '../../src/session/wire.js';
import { RecordType } from '../../src/session/record.js';
import { RawClient, captureLogger, connectPeer, expectAlive, makePeer, refusals, startServer, type TestServer } from '../helpers/capture-logger.js';
import { waitUntil } from '../helpers/wait.js';
import { tempDir } from '../helpers/temp-dir.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function server(...args: Parameters<typeof startServer>): Promise<TestServer> {
  const s = await startServer(...args);
  cleanups.push(() => s.server.close());
  return s;
}

function rawSocket(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(sock));
    sock.on('error', reject);
    cleanups.push(() => sock.destroy());
  });
}
const closedSoon = (sock: net.Socket): Promise<void> => new Promise((r) => (sock.destroyed ? r() : sock.once('close', () => r())));

describe('rekey', () => {
  it('streams numbered messages through several rekeys with nothing lost or reordered', async () => {
    const limits = { rekeyAfterMs: 60, rejectAfterMs: 2_000 };
    const alice = makePeer('alice', new Uint8Array(32).fill(7));
    const srv = await server([alice], { limits });
    const { session } = await connectPeer(srv, alice, { limits });
    const received: number[] = [];
    session.onMessage((m) => received.push(new DataView(m.buffer, m.byteOffset, m.byteLength).getUint32(0)));
    const total = 3_000;
    let sent = 0;
    const end = performance.now() + 10_000;
    while (sent < total && performance.now() < end) {
      for (let i = 0; i < 50 && sent < total; i++) {
        const m = new Uint8Array(64);
        new DataView(m.buffer).setUint32(0, sent++);
        session.send(m);
      }
      // Kept: paces the stream so that it spans several rekeyAfterMs periods (a pace, not a wait).
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitUntil(() => received.length === total, 'all echoes', 10_000);
    expect(received).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(session.stats.rekeys).toBeGreaterThanOrEqual(3);
    await waitUntil(() => srv.sessions[0]!.stats.rekeys >= 3);
    session.close();
  });

  it('rekeys after rekeyAfterRecords records', async () => {
    const limits = { rekeyAfterRecords: 20 };
    const alice = makePeer('alice');
    const srv = await server([alice], { limits });
    const { session } = await connectPeer(srv, alice, { limits });
    let echoes = 0;
    session.onMessage(() => echoes++);
    for (let i = 0; i < 100; i++) {
      session.send(Uint8Array.of(i));
      if (i % 5 === 4) await new Promise((r) => setImmediate(r));
    }
    await waitUntil(() => echoes === 100);
    expect(session.stats.rekeys).toBeGreaterThanOrEqual(3);
    session.close();
  });

  it('a key revoked while connected ends the session at the next rekey', async () => {
    const limits = { rekeyAfterMs: 50, rejectAfterMs: 5_000 };
    const alice = makePeer('alice');
    const srv = await server([alice], { limits });
    const { session } = await connectPeer(srv, alice, { limits });
    const reason = new Promise<{ code: string }>((r) => session.onClose(r));
    srv.removePeer(alice);
    expect((await reason).code).toBe('revoked');
  });

  it('closes a session whose keys outlive rejectAfterMs when the peer never rekeys', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice], { limits: { rekeyAfterMs: 50, rejectAfterMs: 150 } });
    const raw = new RawClient(srv.url, alice, srv.keys.publicKey);
    await raw.opened();
    raw.sendRaw(raw.seal(RecordType.keepalive));
    await waitUntil(() => srv.sessions.length === 1);
    const reason = new Promise<{ code: string; message?: string }>((r) => srv.sessions[0]!.onClose(r));
    const got = await reason;
    expect(got.code).toBe('timeout');
    expect(got.message).toContain('keys older');
    raw.close();
  });
});

describe('keepalive and timers', () => {
  it('keeps an idle session alive with encrypted keepalives', async () => {
    const limits = { keepaliveIntervalMs: 30, deadAfterMs: 600 };
    const alice = makePeer('alice');
    const srv = await server([alice], { limits });
    const { session } = await connectPeer(srv, alice, { limits });
    const before = session.stats.recordsIn;
    // Both sides are idle; only keepalives arrive, for longer than deadAfterMs.
    const t0 = performance.now();
    await waitUntil(() => session.stats.recordsIn > before + 25, 'keepalives', 5_000);
    expect(performance.now() - t0).toBeGreaterThan(600);
    expect(session.closed).toBe(false);
    await expectAlive(session);
    session.close();
  });

  it('detects a peer that stops sending and closes with timeout', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice], { limits: { keepaliveIntervalMs: 30, deadAfterMs: 150 } });
    const raw = new RawClient(srv.url, alice, srv.keys.publicKey);
    await raw.opened();
    raw.sendRaw(raw.seal(RecordType.keepalive));
    await waitUntil(() => srv.sessions.length === 1);
    const started = performance.now();
    const reason = await new Promise<{ code: string }>((r) => srv.sessions[0]!.onClose(r));
    expect(reason.code).toBe('timeout');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(srv.lines.some((l) => l['event'] === 'session.closed' && l['reason'] === 'timeout')).toBe(true);
    await waitUntil(() => raw.closed);
  });

  it('leaves no timers behind after close', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice], { limits: { keepaliveIntervalMs: 1_000, deadAfterMs: 5_000 } });
    const { session } = await connectPeer(srv, alice);
    await waitUntil(() => srv.sessions.length === 1);
    const serverSide = srv.sessions[0] as RecordLayer;
    const clientSide = session as RecordLayer;
    expect(clientSide.timersActive).toBe(true);
    expect(serverSide.timersActive).toBe(true);
    session.close();
    await waitUntil(() => serverSide.closed);
    expect(clientSide.timersActive).toBe(false);
    expect(serverSide.timersActive).toBe(false);
  });
});

describe('backpressure', () => {
  it('send() returns false above the high-water mark and onDrain fires once it falls', async () => {
    const alice = makePeer('alice');
    let receivedBytes = 0;
    const srv = await server([alice], { onSession: (s) => s.onMessage((m) => (receivedBytes += m.length)) });
    const { session } = await connectPeer(srv, alice, { limits: { highWaterBytes: 256 * 1024 } });
    const chunk = new Uint8Array(60_000);
    let sentBytes = 0;
    let accepted = true;
    for (let i = 0; i < 400 && accepted; i++) {
      accepted = session.send(chunk);
      sentBytes += chunk.length;
    }
    expect(accepted).toBe(false);
    expect(session.bufferedAmount).toBeGreaterThan(256 * 1024);
    await new Promise<void>((resolve) => session.onDrain(resolve));
    expect(session.bufferedAmount).toBeLessThanOrEqual(256 * 1024);
    await waitUntil(() => receivedBytes === sentBytes, 'all bytes delivered', 10_000);
    session.close();
  });
});

describe('limits against abuse', () => {
  it('cuts a client that never finishes its handshake at the deadline', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice], { limits: { handshakeTimeoutMs: 200 } });
    const { port } = srv.server.address();
    const silent = await rawSocket(port, '127.0.0.1');
    const raw = new RawClient(srv.url, alice, srv.keys.publicKey); // upgrades, never confirms
    await raw.opened();
    const t0 = performance.now();
    await closedSoon(silent);
    await waitUntil(() => raw.closed);
    expect(performance.now() - t0).toBeLessThan(2_000);
    await waitUntil(() => refusals(srv.lines).filter((l) => l['reason'] === 'handshake-timeout').length >= 2);
    expect(refusals(srv.lines).some((l) => l['reason'] === 'handshake-timeout' && typeof l['fingerprint'] === 'string')).toBe(true);
    expect(srv.sessions.length).toBe(0);
  });

  it('many stalled connections do not stop a legitimate client; the per-address cap holds', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice], { limits: { handshakeTimeoutMs: 3_000, maxUnauthenticatedPerAddress: 8, maxUnauthenticated: 64 } });
    const { port } = srv.server.address();
    const flood: net.Socket[] = [];
    for (let i = 0; i < 12; i++) flood.push(await rawSocket(port, '127.0.0.2'));
    // Connections beyond the cap are dropped at once.
    await waitUntil(() => flood.filter((s) => s.destroyed || s.readableEnded).length >= 4, 'drops', 2_000);
    expect(flood.filter((s) => !s.destroyed && !s.readableEnded).length).toBe(8);
    await waitUntil(() => refusals(srv.lines).some((l) => l['reason'] === 'too-many-unauthenticated' && l['detail'] === 'address-cap'));
    const { session } = await connectPeer(srv, alice);
    await expectAlive(session);
    session.close();
  });

  it('caps unauthenticated connections in all', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice], { limits: { handshakeTimeoutMs: 3_000, maxUnauthenticatedPerAddress: 4, maxUnauthenticated: 6 } });
    const { port } = srv.server.address();
    const socks: net.Socket[] = [];
    for (const a of ['127.0.0.3', '127.0.0.4']) for (let i = 0; i < 3; i++) socks.push(await rawSocket(port, a));
    const extra = await rawSocket(port, '127.0.0.5');
    await closedSoon(extra);
    await waitUntil(() => refusals(srv.lines).some((l) => l['detail'] === 'global-cap'));
    // Half-close and wait for the server's close in answer: then it has released their slots.
    socks.forEach((s) => s.end());
    await Promise.all(socks.map(closedSoon));
    // Once they are gone, a legitimate client gets in.
    const { session } = await connectPeer(srv, alice);
    await expectAlive(session);
    session.close();
  });

  it('rate-limits handshakes per source address', async () => {
    // Keys the server does not know pay per address (allowlisted keys pay per key instead:
    // test/integration/trusted-proxies.test.ts).
    const peers = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => makePeer(n));
    const srv = await server([makePeer('alice')], { limits: { handshakesPerSecondPerAddress: 1, handshakeBurstPerAddress: 2 } });
    const results = await Promise.allSettled(peers.map((p) => connectPeer(srv, p)));
    const refused = results.filter((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'ERR_SESSION_RATE_LIMITED');
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    for (const r of results) if (r.status === 'fulfilled') r.value.session.close();
    expect(refusals(srv.lines).some((l) => l['reason'] === 'rate-limited')).toBe(true);
  });

  it('a client gives up at its connect timeout against a silent server', async () => {
    const silent = net.createServer((s) => s.on('error', () => {}).resume());
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => silent.close(r)));
    const { logger } = captureLogger();
    const port = (silent.address() as net.AddressInfo).port;
    const t0 = performance.now();
    const err = await connectSecure({
      url: `ws://127.0.0.1:${port}/twoway`,
      staticKeyPair: generateKeyPair(),
      serverPublicKeys: [generateKeyPair().publicKey],
      logger,
      connectTimeoutMs: 200,
    }).catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe('ERR_SESSION_HANDSHAKE_TIMEOUT');
    expect(performance.now() - t0).toBeLessThan(2_000);
  });
});

describe('transports', () => {
  let dir: string | undefined;
  afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));
  function selfSigned(): { cert: string; key: string } {
    dir ??= tempDir('tls');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  }

  async function connectProxy(): Promise<{ url: string; connects: string[] }> {
    const connects: string[] = [];
    const proxy = http.createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
      connects.push(req.url ?? '');
      client.on('error', () => {});
      const [host, port] = (req.url ?? '').split(':');
      const upstream = net.connect(Number(port), host!, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      cleanups.push(() => {
        upstream.destroy();
        client.destroy();
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => proxy.close(r)));
    return { url: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`, connects };
  }

  it('works over wss:// with a self-signed certificate, and refuses an untrusted one', async () => {
    const tls = selfSigned();
    const alice = makePeer('alice');
    const srv = await server([alice], { tls });
    expect(srv.url.startsWith('wss://')).toBe(true);
    const { session } = await connectPeer(srv, alice, { tls: { ca: tls.cert } });
    await expectAlive(session);
    session.close();
    const err = await connectPeer(srv, alice).catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe('ERR_TRANSPORT');
  });

  it('works through an HTTP CONNECT proxy, for ws:// and wss://', async () => {
    const proxy = await connectProxy();
    const alice = makePeer('alice');
    const plain = await server([alice]);
    const a = await connectPeer(plain, alice, { proxy: proxy.url });
    await expectAlive(a.session);
    a.session.close();
    const tls = selfSigned();
    const secure = await server([alice], { tls });
    const b = await connectPeer(secure, alice, { proxy: proxy.url, tls: { ca: tls.cert } });
    await expectAlive(b.session);
    b.session.close();
    expect(proxy.connects).toEqual([`127.0.0.1:${plain.server.address().port}`, `127.0.0.1:${secure.server.address().port}`]);
  });

  it('a scripted server that sends garbage after the handshake is cut by the client', async () => {
    const serverKeys = generateKeyPair();
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, handleProtocols: () => WIRE.subprotocol });
    cleanups.push(() => new Promise((r) => wss.close(r)));
    const replies = new WeakMap<object, string>();
    wss.on('headers', (headers, req) => {
      const m1 = decodeBase64Url(String(req.headers[HANDSHAKE_HEADER.toLowerCase()]), 1024, 'm1');
      const consumed = consumeInitiation(WIRE, serverKeys, m1);
      const reply = createResponse(consumed, ZERO_PSK);
      replies.set(req, '1');
      headers.push(`${HANDSHAKE_HEADER}: ${encodeBase64Url(reply.message)}`);
    });
    wss.on('connection', (ws) => {
      ws.on('error', () => {});
      ws.once('message', () => ws.send(Buffer.from('garbage garbage garbage garbage')));
    });
    await new Promise<void>((r) => (wss.address() ? r() : wss.once('listening', () => r())));
    const { logger } = captureLogger();
    const session = await connectSecure({
      url: `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}/twoway`,
      staticKeyPair: generateKeyPair(),
      serverPublicKeys: [serverKeys.publicKey],
      logger,
    });
    const reason = await new Promise<{ code: string }>((r) => session.onClose(r));
    expect(reason.code).toBe('protocol-error');
  });
});
