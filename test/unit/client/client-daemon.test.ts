/**
 * The client daemon in one process against a real server daemon (test/helpers/daemon-pair.ts):
 * reconnect after the server drops the session, the backoff schedule (fake timers, in memory),
 * and opens that wait for the tunnel to come back or give up after connect_wait_ms.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startDaemonPair, TRANSPORTS, type DaemonPair } from '../../helpers/daemon-pair.js';
import { waitUntil } from '../../helpers/wait.js';
import { startEchoServer } from '../../helpers/tunnel.js';

let echo: { server: net.Server; port: number };
beforeAll(async () => {
  echo = await startEchoServer();
});
afterAll(() => echo.server.close());

let pair: DaemonPair | undefined;
afterEach(async () => {
  vi.useRealTimers();
  await pair?.stop();
  pair = undefined;
});

function echoed(stream: Duplex, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (c: Buffer): void => {
      got += c.toString();
      if (got.length >= text.length) {
        stream.off('data', onData);
        resolve(got);
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
    stream.write(text);
  });
}

/** Lets I/O and immediates run (real) while timers are fake, until `condition` or `rounds` pass. */
async function settle(condition: () => boolean = () => false, rounds = 200): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    if (condition()) return true;
    await new Promise((r) => setImmediate(r));
  }
  return condition();
}

describe.each(TRANSPORTS)('ClientDaemon $name', ({ realSocket }) => {
  it('reconnects after the server drops the session, and carries streams again', async () => {
    pair = await startDaemonPair({ realSocket, peers: [{ name: 'alice', allow: [`127.0.0.1:${echo.port}`] }] });
    const [alice] = pair.peers;
    const before = pair.client.status().sessionsOpened;
    // The server drops the session (the key is removed), then lets it back in.
    pair.server.reload(pair.allowlist([]));
    await waitUntil(() => !pair!.client.connected, 'the session to drop', 5_000);
    pair.server.reload(pair.allowlist([alice!]));
    await pair.reconnected(before);
    expect(pair.events('client', 'reconnect.scheduled').length).toBeGreaterThan(0);
    expect(pair.client.status()).toMatchObject({ state: 'connected', sessionsOpened: before + 1 });
    const stream = pair.client.openStream(`127.0.0.1:${echo.port}`);
    expect(await echoed(stream, 'again')).toBe('again');
    stream.end();
  });

  it('an open made while the tunnel is down waits for it and proceeds', async () => {
    pair = await startDaemonPair({ realSocket, peers: [{ name: 'alice', allow: [`127.0.0.1:${echo.port}`] }] });
    const [alice] = pair.peers;
    const before = pair.client.status().sessionsOpened;
    pair.server.reload(pair.allowlist([]));
    await waitUntil(() => !pair!.client.connected, 'the session to drop', 5_000);
    const waiting = pair.client.openStream(`127.0.0.1:${echo.port}`);
    const answer = echoed(waiting, 'waited');
    pair.server.reload(pair.allowlist([alice!]));
    await pair.reconnected(before);
    expect(await answer).toBe('waited');
    waiting.end();
  });
});

describe('ClientDaemon in memory, fake timers', () => {
  it('retries on the backoff schedule: exponential, jittered, capped, and not a moment before', async () => {
    pair = await startDaemonPair({
      realSocket: false,
      // With the jitter source fixed at 0.5, delay = min + 0.5 * (min(max, min * 2^attempt) - min).
      client: { reconnectMinMs: 1_000, reconnectMaxMs: 4_000, random: () => 0.5 },
    });
    const network = pair.network!;
    const delays = (): unknown[] => pair!.events('client', 'reconnect.scheduled').map((l) => l.delayMs);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    network.down = true;
    network.drop();
    expect(await settle(() => delays().length === 1)).toBe(true);
    const expected = [1_000, 1_500, 2_500, 2_500];
    const attempts = network.attempts;
    for (let i = 0; i < expected.length; i++) {
      expect(delays()[i]).toBe(expected[i]);
      if (i === expected.length - 1) network.down = false;
      vi.advanceTimersByTime(expected[i]! - 1);
      await settle();
      expect(network.attempts).toBe(attempts + i);
      vi.advanceTimersByTime(1);
      expect(await settle(() => network.attempts === attempts + i + 1)).toBe(true);
      if (i < expected.length - 1) expect(await settle(() => delays().length === i + 2)).toBe(true);
    }
    expect(await settle(() => pair!.client.connected)).toBe(true);
    expect(delays()).toEqual(expected);
  });

  it('twoway reconnect answers failed as soon as its attempt fails, not at its timeout', async () => {
    pair = await startDaemonPair({ realSocket: false, client: { reconnectMinMs: 60_000, reconnectMaxMs: 60_000 } });
    const network = pair.network!;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    network.down = true;
    network.drop();
    expect(await settle(() => !pair!.client.connected && pair!.events('client', 'reconnect.scheduled').length === 1)).toBe(true);
    const attempts = network.attempts;
    let result: Awaited<ReturnType<DaemonPair['client']['reconnectNow']>> | undefined;
    void pair.client.reconnectNow(600_000).then((r) => (result = r));
    // No fake time passes: only the attempt's own end may answer.
    expect(await settle(() => result !== undefined)).toBe(true);
    expect(network.attempts).toBe(attempts + 1);
    expect(result!.state).toBe('failed');
    expect(String(result!.lastError)).toContain('connection refused');
  });

  it('an open waits at most connect_wait_ms for a tunnel that stays down, then is refused', async () => {
    pair = await startDaemonPair({
      realSocket: false,
      client: { reconnectMinMs: 60_000, reconnectMaxMs: 60_000, connectWaitMs: 3_000 },
    });
    const network = pair.network!;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    network.down = true;
    network.drop();
    expect(await settle(() => !pair!.client.connected && pair!.events('client', 'reconnect.scheduled').length === 1)).toBe(true);
    const stream = pair.client.openStream('127.0.0.1:9');
    let failed: (Error & { reason?: string }) | undefined;
    stream.once('error', (err) => (failed = err));
    vi.advanceTimersByTime(2_999);
    await settle();
    expect(failed).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(await settle(() => failed !== undefined)).toBe(true);
    expect(failed!.reason).toBe('tunnel-closed');
    expect(failed!.message).toContain('did not come back within 3000 ms');
  });
});
