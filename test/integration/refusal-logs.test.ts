/**
 * Refusals are rate-limited in the logs of the real daemons (issue 13 items 1 and 11): a bounded
 * flood of refused handshakes, of refused streams of one logged-in key, and of connections to a
 * device's reverse listener each writes at most REFUSAL_LINES_PER_INTERVAL lines, and the
 * `refusals.suppressed` line written at stop counts the rest by reason.
 */
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey, generateKeyPair } from '../../src/crypto/keys.js';
import { REFUSAL_LINES_PER_INTERVAL } from '../../src/log/rate-limit.js';
import { connectSecure } from '../../src/session/connect-secure.js';
import { type Proc } from '../helpers/processes.js';
import { freePort } from '../helpers/ports.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

const HANDSHAKES = 150;
const STREAMS = 40;
const REVERSE_CONNECTIONS = 120;

/** Connects and closes at once (resolves when the socket is closed either way). */
function touch(port: number, reset: boolean): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('connect', () => (reset ? socket.resetAndDestroy() : socket.end('x')));
    socket.on('error', () => {});
    socket.on('close', () => resolve());
  });
}

function summaries(proc: Proc, of: string): Array<Record<string, unknown>> {
  return proc.logLines().filter((l) => l.event === 'refusals.suppressed' && l.of === of);
}

describe('refusal lines are rate-limited', () => {
  let tunnel: TestTunnel;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let alice: Proc;
  let device: Proc;

  beforeAll(async () => {
    echo = await startEchoServer();
    const reversePort = await freePort();
    tunnel = new TestTunnel({
      peers: [
        { name: 'alice', allow: [] },
        { name: 'build1', allow: [], kind: 'device', reverse: [`echo=127.0.0.1:${reversePort}`] },
      ],
    });
    await tunnel.startServer();
    const aliceKey = encodeKey(tunnel.peers.find((p) => p.name === 'alice')!.key.publicKey);
    device = await tunnel.startClient(
      'build1',
      `[[service]]\nname = "echo"\ntarget = "127.0.0.1:${echo.port}"\nallow = ["alice=${aliceKey}"]\nreverse = true\n`,
    );
    await tunnel.server!.waitForEvent('reverse.listen', { service: 'echo' });
    alice = await tunnel.startClient('alice', `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:9"\n`);
    const [deniedPort] = TestTunnel.listenerPorts(alice);

    // Unauthenticated: handshakes with keys the server does not know, a few at a time.
    const url = tunnel.url;
    const serverKey = tunnel.serverKey.publicKey;
    const logger = pino({ level: 'silent' });
    let failed = 0;
    for (let i = 0; i < HANDSHAKES; i += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, HANDSHAKES - i) }, () =>
          connectSecure({ url, staticKeyPair: generateKeyPair(), serverPublicKeys: [serverKey], logger, connectTimeoutMs: 5_000 }).then(
            (s) => s.close(),
            () => void failed++,
          ),
        ),
      );
    }
    expect(failed).toBe(HANDSHAKES);

    // One logged-in key: streams to a target it may not reach (within its open burst).
    for (let i = 0; i < STREAMS; i++) await touch(deniedPort!, false);
    await waitUntil(() => tunnel.server!.logLines().filter((l) => l.event === 'stream.refused').length >= REFUSAL_LINES_PER_INTERVAL, 'stream refusals logged');

    // Anyone who reaches a reverse listener: connections that reset at once.
    for (let i = 0; i < REVERSE_CONNECTIONS; i += 10) await Promise.all(Array.from({ length: 10 }, () => touch(reversePort, true)));

    // The summaries of what is still pending are written when the daemons stop.
    await alice.stop();
    await device.stop();
    await tunnel.server!.stop();
  }, 90_000);

  afterAll(async () => {
    await tunnel.stop();
    echo.server.close();
  });

  it('refused handshakes: at most the budget of lines, the rest counted by reason', () => {
    const server = tunnel.server!;
    const lines = server.logLines().filter((l) => l.event === 'auth.refused');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThanOrEqual(REFUSAL_LINES_PER_INTERVAL * 2);
    const suppressed = summaries(server, 'auth.refused');
    expect(suppressed.length).toBeGreaterThanOrEqual(1);
    expect(suppressed.length).toBeLessThanOrEqual(3);
    const counted = suppressed.reduce((n, l) => n + Number(l.suppressed), 0);
    // Every attempt is one line or one count: nothing lost, nothing doubled.
    expect(lines.length + counted).toBe(HANDSHAKES);
    const byReason: Record<string, number> = {};
    for (const l of [...lines, ...suppressed.flatMap((s) => Object.entries(s.reasons as Record<string, number>).map(([reason, n]) => ({ reason, n })))]) {
      const { reason, n } = 'n' in l ? (l as { reason: string; n: number }) : { reason: String(l.reason), n: 1 };
      byReason[reason] = (byReason[reason] ?? 0) + n;
    }
    expect(
      Object.keys(byReason).every((r) => ['unknown-key', 'rate-limited', 'too-many-unauthenticated'].includes(r)),
      JSON.stringify(byReason),
    ).toBe(true);
    expect(byReason['unknown-key']).toBeGreaterThan(0);
  });

  it('refused streams of one key: at most the budget of lines on the server and on the client', () => {
    for (const proc of [tunnel.server!, alice]) {
      const lines = proc.logLines().filter((l) => l.event === 'stream.refused');
      expect(lines.length).toBeLessThanOrEqual(REFUSAL_LINES_PER_INTERVAL * 2);
      const counted = summaries(proc, 'stream.refused').reduce((n, l) => n + Number(l.suppressed), 0);
      expect(lines.length + counted).toBe(STREAMS);
    }
    expect(summaries(tunnel.server!, 'stream.refused')[0]).toMatchObject({ peer: 'alice', reasons: { 'not-permitted': expect.any(Number) } });
  });

  it('reverse-listener connections: at most the budget of lines, the rest counted', () => {
    const server = tunnel.server!;
    const lines = server.logLines().filter((l) => String(l.event).startsWith('device.stream.') && l.user === 'reverse');
    expect(lines.length).toBeLessThanOrEqual(REFUSAL_LINES_PER_INTERVAL * 2);
    const counted = summaries(server, 'reverse connection').reduce((n, l) => n + Number(l.suppressed), 0);
    // A connection writes one or two lines (none when the device's open budget is spent).
    expect(counted).toBeGreaterThan(0);
    expect(lines.length + counted).toBeLessThanOrEqual(2 * REVERSE_CONNECTIONS);
    expect(server.logLines().length).toBeLessThan(REVERSE_CONNECTIONS);
  });
});
