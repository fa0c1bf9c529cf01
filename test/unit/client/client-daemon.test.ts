/**
 * The client daemon in one process against a real server daemon (test/helpers/daemon-pair.ts):
 * reconnect after the server drops the session, the backoff schedule (fake timers, in memory),
 * and opens that wait for the tunnel to come back or give up after connect_wait_ms.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { daemonPairFixture, echoed, startDaemonPair, TRANSPORTS, type DaemonPair } from '../../helpers/daemon-pair.js';
import { waitUntil } from '../../helpers/wait.js';

const fixture = daemonPairFixture();
afterEach(() => {
  vi.useRealTimers();
});

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
    fixture.pair = await startDaemonPair({ realSocket, peers: [{ name: 'alice', allow: [`127.0.0.1:${fixture.echoPort}`] }] });
    const [alice] = fixture.pair.peers;
    const before = fixture.pair.client.status().sessionsOpened;
    // The server drops the session (the key is removed), then lets it back in.
    fixture.pair.server.reload(fixture.pair.allowlist([]));
    await waitUntil(() => !fixture.pair!.client.connected, 'the session to drop', 5_000);
    fixture.pair.server.reload(fixture.pair.allowlist([alice!]));
    await fixture.pair.reconnected(before);
    expect(fixture.pair.events('client', 'reconnect.scheduled').length).toBeGreaterThan(0);
    expect(fixture.pair.client.status()).toMatchObject({ state: 'connected', sessionsOpened: before + 1 });
    const stream = fixture.pair.client.openStream(`127.0.0.1:${fixture.echoPort}`);
    expect(await echoed(stream, 'again')).toBe('again');
    stream.end();
  });

  it('an open made while the tunnel is down waits for it and proceeds', async () => {
    fixture.pair = await startDaemonPair({ realSocket, peers: [{ name: 'alice', allow: [`127.0.0.1:${fixture.echoPort}`] }] });
    const [alice] = fixture.pair.peers;
    const before = fixture.pair.client.status().sessionsOpened;
    fixture.pair.server.reload(fixture.pair.allowlist([]));
    await waitUntil(() => !fixture.pair!.client.connected, 'the session to drop', 5_000);
    const waiting = fixture.pair.client.openStream(`127.0.0.1:${fixture.echoPort}`);
    const answer = echoed(waiting, 'waited');
    fixture.pair.server.reload(fixture.pair.allowlist([alice!]));
    await fixture.pair.reconnected(before);
    expect(await answer).toBe('waited');
    waiting.end();
  });
});

describe('ClientDaemon in memory, fake timers', () => {
  it('retries on the backoff schedule: exponential, jittered, capped, and not a moment before', async () => {
    fixture.pair = await startDaemonPair({
      realSocket: false,
      // With the jitter source fixed at 0.5, delay = min + 0.5 * (min(max, min * 2^attempt) - min).
      client: { reconnectMinMs: 1_000, reconnectMaxMs: 4_000, random: () => 0.5 },
    });
    const network = fixture.pair.network!;
    const delays = (): unknown[] => fixture.pair!.events('client', 'reconnect.scheduled').map((l) => l.delayMs);
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
    expect(await settle(() => fixture.pair!.client.connected)).toBe(true);
    expect(delays()).toEqual(expected);
  });

  it('twoway reconnect answers failed as soon as its attempt fails, not at its timeout', async () => {
    fixture.pair = await startDaemonPair({ realSocket: false, client: { reconnectMinMs: 60_000, reconnectMaxMs: 60_000 } });
    const network = fixture.pair.network!;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    network.down = true;
    network.drop();
    expect(await settle(() => !fixture.pair!.client.connected && fixture.pair!.events('client', 'reconnect.scheduled').length === 1)).toBe(true);
    const attempts = network.attempts;
    let result: Awaited<ReturnType<DaemonPair['client']['reconnectNow']>> | undefined;
    void fixture.pair.client.reconnectNow(600_000).then((r) => (result = r));
    // No fake time passes: only the attempt's own end may answer.
    expect(await settle(() => result !== undefined)).toBe(true);
    expect(network.attempts).toBe(attempts + 1);
    expect(result!.state).toBe('failed');
    expect(String(result!.lastError)).toContain('connection refused');
  });

  it('an open waits at most connect_wait_ms for a tunnel that stays down, then is refused', async () => {
    fixture.pair = await startDaemonPair({
      realSocket: false,
      client: { reconnectMinMs: 60_000, reconnectMaxMs: 60_000, connectWaitMs: 3_000 },
    });
    const network = fixture.pair.network!;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    network.down = true;
    network.drop();
    expect(await settle(() => !fixture.pair!.client.connected && fixture.pair!.events('client', 'reconnect.scheduled').length === 1)).toBe(true);
    const stream = fixture.pair.client.openStream('127.0.0.1:9');
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
