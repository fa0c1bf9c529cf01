/**
 * Trusted reverse proxies (issue 13 #8), through real servers started from bin/: with the proxy
 * trusted, the admission limits apply to the client address it reports (X-Forwarded-For or a
 * PROXY v2 header), so clients behind one proxy address do not share a budget; from an address
 * that is not trusted, X-Forwarded-For is ignored and a PROXY header is refused. And once message
 * 1 decrypts, an allowlisted key pays from its own handshake budget, not its address's.
 */
import type net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { TestTunnel } from '../helpers/tunnel.js';
import { holdOpen, proxyV2Header, sendRaw, startReverseProxy, upgradeRequest, validHandshakeHeader } from '../helpers/raw-upgrade.js';
import { HANDSHAKE_HEADER } from '../../src/session/wire.js';
import { waitUntil } from '../helpers/wait.js';

const tunnels: TestTunnel[] = [];
const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
afterAll(async () => {
  for (const s of sockets) s.destroy();
  for (const s of servers) s.close();
  await Promise.all(tunnels.map((t) => t.stop()));
});

/** A server with the given [server] extras and limits; pending handshakes stay pending for a minute. */
async function server(extra: string, limits: string): Promise<TestTunnel> {
  const tunnel = new TestTunnel({
    peers: [
      { name: 'alice', allow: [] },
      { name: 'bob', allow: [] },
    ],
    serverExtra: extra,
    serverLimits: `handshake_timeout_ms = 60000\n${limits}`,
  });
  tunnels.push(tunnel);
  await tunnel.startServer();
  return tunnel;
}

const xff = (ip: string, handshake?: string): string => upgradeRequest({ 'X-Forwarded-For': ip, ...(handshake ? { [HANDSHAKE_HEADER]: handshake } : {}) });

/** Starts a client daemon for `peer` whose server_url is `port` (a proxy) instead of the server. */
async function clientThrough(tunnel: TestTunnel, peer: string, port: number): Promise<void> {
  const real = tunnel.serverPort;
  tunnel.serverPort = port;
  try {
    await tunnel.startClient(peer);
  } finally {
    tunnel.serverPort = real;
  }
}

describe('X-Forwarded-For from a trusted proxy', () => {
  it('the per-address cap counts the forwarded address, not the proxy address; a real client behind the proxy connects', async () => {
    const t = await server('trusted_proxies = ["127.0.0.1"]', 'max_unauthenticated_per_ip = 1');
    // A handshake that never confirms holds 192.0.2.1's only unauthenticated slot.
    const held = await sendRaw(t.serverPort, xff('192.0.2.1', validHandshakeHeader(t.peers[0]!.key, t.serverKey.publicKey)));
    sockets.push(held.socket);
    expect(held.status).toBe(101);
    const same = await sendRaw(t.serverPort, xff('192.0.2.1'));
    expect(same.status).toBe(429);
    await t.server!.waitForEvent('auth.refused', { reason: 'too-many-unauthenticated', remote: '192.0.2.1' });
    // Another client behind the same proxy address has its own budget: its garbage gets the 401.
    expect((await sendRaw(t.serverPort, xff('192.0.2.2'))).status).toBe(401);
    // The rightmost hop that is not a trusted proxy is the client; a forged hop further left is not.
    expect((await sendRaw(t.serverPort, xff('192.0.2.1, 192.0.2.9, 127.0.0.1'))).status).toBe(401);
    await t.server!.waitForEvent('auth.refused', { reason: 'bad-message', remote: '192.0.2.9' });

    const proxy = await startReverseProxy(t.serverPort, 'xff', { ip: '192.0.2.3', port: 0 });
    servers.push(proxy.server);
    await clientThrough(t, 'bob', proxy.port);
    const accepted = await t.server!.waitForEvent('auth.accepted', { remote: '192.0.2.3' });
    expect(String(accepted.via)).toMatch(/^127\.0\.0\.1:\d+$/);
  }, 30_000);

  it('is ignored from an address that is not trusted: everyone there shares one budget', async () => {
    const t = await server('trusted_proxies = ["10.0.0.0/8"]', 'max_unauthenticated_per_ip = 1');
    const held = await holdOpen(t.serverPort);
    sockets.push(held.socket);
    // The slot of 127.0.0.1 is taken; a forged X-Forwarded-For changes nothing: dropped at accept.
    const forged = await sendRaw(t.serverPort, xff('192.0.2.7'));
    expect(forged.status).toBe('closed');
    expect(forged.raw.length).toBe(0);
    await t.server!.waitForEvent('auth.refused', { reason: 'too-many-unauthenticated' });
    const lines = t.server!.logLines().filter((l) => l.event === 'auth.refused');
    expect(lines.some((l) => String(l.remote).includes('192.0.2.7'))).toBe(false);
    expect(held.closed()).toBe(false);
  }, 30_000);
});

describe('PROXY protocol v2', () => {
  it('from a trusted proxy: limits apply to the address in the header; a real client behind it connects', async () => {
    const t = await server('trusted_proxies = ["127.0.0.1"]\nproxy_protocol = true', 'max_unauthenticated_per_ip = 1');
    const held = await holdOpen(t.serverPort, proxyV2Header({ ip: '192.0.2.1', port: 1111 }));
    sockets.push(held.socket);
    // Same client address: dropped at accept, without an answer.
    const same = await sendRaw(t.serverPort, Buffer.concat([proxyV2Header({ ip: '192.0.2.1', port: 2222 }), Buffer.from(upgradeRequest())]));
    expect(same.status).toBe('closed');
    await t.server!.waitForEvent('auth.refused', { reason: 'too-many-unauthenticated', remote: '192.0.2.1:2222' });
    // Another address behind the same proxy: admitted (its garbage handshake gets the 401).
    expect((await sendRaw(t.serverPort, Buffer.concat([proxyV2Header({ ip: '2001:db8::5', port: 3333 }), Buffer.from(upgradeRequest())]))).status).toBe(401);
    await t.server!.waitForEvent('auth.refused', { reason: 'bad-message', remote: '[2001:db8:0:0:0:0:0:5]:3333' });
    // A trusted address that sends no PROXY header is refused.
    const bare = await sendRaw(t.serverPort, upgradeRequest());
    expect(bare.status).toBe('closed');
    await t.server!.waitForEvent('auth.refused', { reason: 'bad-message', detail: 'PROXY header: no PROXY protocol v2 signature' });
    expect(held.closed()).toBe(false);

    const proxy = await startReverseProxy(t.serverPort, 'proxy-v2', { ip: '192.0.2.3', port: 4444 });
    servers.push(proxy.server);
    await clientThrough(t, 'bob', proxy.port);
    await t.server!.waitForEvent('auth.accepted', { remote: '192.0.2.3:4444' });
  }, 30_000);

  it('from an address that is not trusted: the header is refused, never believed', async () => {
    const t = await server('trusted_proxies = ["10.0.0.0/8"]\nproxy_protocol = true', '');
    const forged = await sendRaw(
      t.serverPort,
      Buffer.concat([
        proxyV2Header({ ip: '192.0.2.1', port: 1 }),
        Buffer.from(upgradeRequest({ [HANDSHAKE_HEADER]: validHandshakeHeader(t.peers[0]!.key, t.serverKey.publicKey) })),
      ]),
    );
    expect(forged.status).toBe(400);
    expect(forged.raw.toString('latin1')).not.toMatch(/101|Twoway/);
    // A plain client from there still connects.
    await t.startClient('alice');
    await t.server!.waitForEvent('auth.accepted', { peer: 'alice' });
    const remotes = t
      .server!.logLines()
      .filter((l) => String(l.event).startsWith('auth.'))
      .map((l) => String(l.remote));
    expect(remotes.every((r) => r.startsWith('127.0.0.1:'))).toBe(true);
  }, 30_000);
});

describe('per-key handshake budget', () => {
  it('an allowlisted key does not spend its address budget; beyond its own budget it is refused, another key behind the address is not', async () => {
    const t = await server('', 'handshake_rate_per_ip = 1\nhandshake_burst_per_ip = 1\nhandshake_rate_per_key = 1\nhandshake_burst_per_key = 2');
    const [alice, bob] = [t.peers[0]!.key, t.peers[1]!.key];
    const statuses: Array<number | 'closed'> = [];
    for (const key of [alice, alice, bob, alice]) {
      // Initiations of one key must be at least 20 ms apart (the replay guard's floor).
      await new Promise((r) => setTimeout(r, 30));
      const answer = await sendRaw(t.serverPort, upgradeRequest({ [HANDSHAKE_HEADER]: validHandshakeHeader(key, t.serverKey.publicKey) }));
      sockets.push(answer.socket);
      statuses.push(answer.status);
    }
    // With a per-address burst of 1, only the first would pass if keys paid per address; alice's
    // third is beyond her own burst of 2.
    expect(statuses).toEqual([101, 101, 101, 429]);
    await t.server!.waitForEvent('auth.refused', { reason: 'rate-limited', detail: 'key' });
    // Garbage still pays per address: the first takes the one token, the next is refused.
    await waitUntil(async () => (await sendRaw(t.serverPort, upgradeRequest())).status === 429, 'garbage rate-limited per address');
  }, 30_000);
});
