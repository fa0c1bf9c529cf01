/**
 * The daemons' JSON log lines as a log pipeline reads them: every line of a real server and client
 * (at debug level, through a session, an open, a close, a refusal, an unknown key and a
 * revocation) parses with a parser that rejects duplicate keys, every `event` is one of the
 * stable names of src/log/events.ts, and the session.closed reasons say what happened.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENTS } from '../../src/log/events.js';
import { encodeKey, generateKeyPair } from '../../src/crypto/keys.js';
import { runTwoway, twoway, type Proc } from '../helpers/processes.js';
import { parseLogLine } from '../helpers/strict-json.js';
import { refusingPort } from '../helpers/ports.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';

const STABLE = new Set<string>(Object.values(EVENTS));

async function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (Buffer.concat(chunks).length >= payload.length) socket.end();
    });
    socket.on('error', () => resolve(Buffer.concat(chunks)));
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.write(payload);
  });
}

function eventsOf(proc: Proc): string[] {
  return proc.logLines().map((l) => String(l.event));
}

describe('daemon log lines', () => {
  let tunnel: TestTunnel;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let client: Proc;
  let bob: Proc;
  let olderDevice: Proc;
  let newerDevice: Proc;

  beforeAll(async () => {
    echo = await startEchoServer();
    const refusedPort = await refusingPort();
    tunnel = new TestTunnel({
      peers: [
        { name: 'alice', allow: [`127.0.0.1:${echo.port}`, `127.0.0.1:${refusedPort}`] },
        { name: 'bob', allow: [] },
        { name: 'build1', allow: [], kind: 'device' },
      ],
      logLevel: 'debug',
    });
    await tunnel.startServer();
    client = await tunnel.startClient(
      'alice',
      `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echo.port}"\n` +
        `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:9"\n` +
        `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${refusedPort}"\n`,
    );
    const [okPort, deniedPort, refusedFwd] = TestTunnel.listenerPorts(client);
    const payload = Buffer.alloc(64 * 1024, 7);
    expect((await roundTrip(okPort!, payload)).equals(payload)).toBe(true);
    await roundTrip(deniedPort!, Buffer.from('x'));
    await roundTrip(refusedFwd!, Buffer.from('x'));
    await tunnel.server!.waitForEvent('stream.close');
    await tunnel.server!.waitForEvent('stream.refused', { reason: 'not-permitted' });

    // An unknown key: the server logs auth.refused.
    const stranger = generateKeyPair();
    tunnel.writeSecret('stranger.key', encodeKey(stranger.privateKey));
    const cfg = tunnel.path('client-stranger.toml');
    const aliceConfig = fs.readFileSync(tunnel.path('client-alice.toml'), 'utf8');
    fs.writeFileSync(
      cfg,
      aliceConfig
        .replace('"alice.key"', '"stranger.key"')
        .replace(/^control_socket = .*$/m, '')
        .replace(/\[\[forward\]\][^[]*/g, ''),
    );
    const refused = await runTwoway(['connect', '-c', cfg, `127.0.0.1:${echo.port}`]);
    expect(refused.code).toBe(4);
    await tunnel.server!.waitForEvent('auth.refused', { reason: 'unknown-key' });

    // Revocation: the client's session ends with reason revoked.
    const removed = await runTwoway(['peers', 'remove', 'alice', '--config', tunnel.path('server.toml')]);
    expect(removed.code).toBe(0);
    await client.waitForEvent('session.closed');
    await tunnel.server!.waitForEvent('session.closed');

    // A device whose key connects again elsewhere: the older session is replaced.
    const service = `[[service]]\nname = "echo"\ntarget = "127.0.0.1:${echo.port}"\nallow = []\n`;
    olderDevice = await tunnel.startClient('build1', service);
    const olderLines = olderDevice.stdout.length;
    // The same key from a second agent (its own control socket: the first one holds build1's).
    const newerConfig = tunnel.path('client-build1-newer.toml');
    fs.writeFileSync(
      newerConfig,
      fs.readFileSync(tunnel.clientConfig('build1', service), 'utf8').replace(/^control_socket = .*$/m, 'control_socket = "client-build1-newer.sock"'),
    );
    newerDevice = twoway(['client', '--config', newerConfig]);
    await newerDevice.waitForEvent('session.open');
    await olderDevice.waitFor((p) => p.stdout.slice(olderLines).includes('"session.closed"'), 'the older device session to close');
    await olderDevice.stop();
    await newerDevice.stop();

    // A server that stops: bob's session ends with the server's reason.
    bob = await tunnel.startClient('bob', '');
    await tunnel.server!.stop();
    await bob.waitForEvent('session.closed');
    await tunnel.stop();
  }, 60_000);

  afterAll(async () => {
    await tunnel.stop();
    echo.server.close();
  });

  it('has no duplicate keys in any line of any daemon', () => {
    for (const proc of [tunnel.server!, client, bob, olderDevice, newerDevice]) {
      const lines = proc.stdout.split('\n').filter((l) => l.startsWith('{'));
      expect(lines.length).toBeGreaterThan(2);
      for (const line of lines) expect(() => parseLogLine(line), line).not.toThrow();
    }
  });

  it('logs only events of the stable list', () => {
    const seen = new Set([...eventsOf(tunnel.server!), ...eventsOf(client), ...eventsOf(bob)]);
    for (const e of ['auth.accepted', 'auth.refused', 'session.open', 'session.closed', 'stream.open', 'stream.close', 'stream.refused', 'daemon.stop']) {
      expect(seen, e).toContain(e);
    }
    // Debug lines of the stream layer may carry no event; every other line names a stable one.
    const odd = [tunnel.server!, client, bob]
      .flatMap((p) => p.logLines())
      .filter((l) => (l.event === undefined ? Number(l.level) >= 30 : !STABLE.has(l.event as string)));
    expect(odd).toEqual([]);
  });

  it('says why a revoked client lost its session', () => {
    const closed = client.logLines().find((l) => l.event === 'session.closed');
    expect(closed).toMatchObject({ reason: 'revoked', remoteClose: true });
    const serverClosed = tunnel.server!.logLines().filter((l) => l.event === 'session.closed' && l.peer === 'alice');
    expect(serverClosed).toHaveLength(1);
    expect(serverClosed[0]).toMatchObject({ reason: 'revoked', remoteClose: false });
  });

  it('says why a device lost its session to a newer one of the same key', () => {
    expect(olderDevice.logLines().find((l) => l.event === 'session.closed')).toMatchObject({ reason: 'replaced', remoteClose: true });
  });

  it('says why a client lost its session to a server that stopped', () => {
    expect(bob.logLines().find((l) => l.event === 'session.closed')).toMatchObject({ reason: 'shutdown', remoteClose: true });
    expect(tunnel.server!.logLines().find((l) => l.event === 'session.closed' && l.peer === 'bob')).toMatchObject({ reason: 'shutdown', remoteClose: false });
  });
});
