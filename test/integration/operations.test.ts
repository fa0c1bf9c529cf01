/**
 * Running it for real: reload keeps unrelated streams, revocation cuts a peer within a second, a
 * broken allowlist is refused while the old one stays in force, SIGTERM drains, the client
 * reconnects to a restarted server on the same local listener, and a real HTTP CONNECT proxy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, refusingPort } from '../helpers/ports.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import { twoway } from '../helpers/processes.js';
import { waitUntil } from '../helpers/wait.js';

let tunnel: TestTunnel | undefined;
let echo: { server: net.Server; port: number } | undefined;
const extra: ChildProcess[] = [];

afterEach(async () => {
  await tunnel?.stop();
  tunnel = undefined;
  echo?.server.close();
  echo = undefined;
  for (const p of extra.splice(0)) p.kill('SIGTERM');
});

/** Opens a connection through a forward and checks it echoes. */
async function openEchoing(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await roundTrip(socket, 'hello');
  return socket;
}

function roundTrip(socket: net.Socket, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (c: Buffer): void => {
      got += c.toString();
      if (got === text) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(got)}`)));
    socket.write(text);
  });
}

function closedOutcome(socket: net.Socket): Promise<{ error?: string; atMs: number }> {
  const start = Date.now();
  return new Promise((resolve) => {
    let error: string | undefined;
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    socket.once('close', () => resolve({ ...(error ? { error } : {}), atMs: Date.now() - start }));
  });
}

async function setup(peers = ['alice', 'bob']): Promise<{ ports: Record<string, number> }> {
  echo = await startEchoServer();
  tunnel = new TestTunnel({ peers: peers.map((name) => ({ name, allow: [`127.0.0.1:${echo!.port}`] })) });
  await tunnel.startServer();
  const ports: Record<string, number> = {};
  for (const name of peers) {
    const client = await tunnel.startClient(name, `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echo.port}"\n`);
    ports[name] = TestTunnel.listenerPorts(client)[0]!;
  }
  return { ports };
}

describe('reload and revocation', () => {
  it('an unrelated change keeps open streams; a revoked peer is cut within a second', async () => {
    const { ports } = await setup();
    const aliceStream = await openEchoing(ports.alice!);
    const bobStream = await openEchoing(ports.bob!);
    const bobClosed = closedOutcome(bobStream);
    // Remove bob, keep alice as she was: SIGHUP.
    tunnel!.writePeers(tunnel!.peers.filter((p) => p.name === 'alice'));
    const t0 = Date.now();
    tunnel!.server!.kill('SIGHUP');
    const outcome = await bobClosed;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(outcome.error).toBe('ECONNRESET');
    await tunnel!.server!.waitForEvent('config.reload', { removed: 1 });
    // Alice's stream did not notice.
    await roundTrip(aliceStream, 'still up');
    aliceStream.destroy();
    // Bob cannot come back: his client's next attempts are refused.
    await tunnel!.clients[1]!.waitForEvent('connect.failed');
    await tunnel!.server!.waitForEvent('auth.refused');
  });

  it('a narrowed permission resets only the streams it no longer allows', async () => {
    const { ports } = await setup(['alice']);
    const stream = await openEchoing(ports.alice!);
    const closed = closedOutcome(stream);
    tunnel!.writePeers([{ ...tunnel!.peers[0]!, allow: ['127.0.0.1:1'] }]);
    tunnel!.server!.kill('SIGHUP');
    expect((await closed).error).toBe('ECONNRESET');
    await tunnel!.server!.waitForEvent('stream.reset', { reason: 'not-permitted' });
    // The session itself stays: no session.closed line.
    expect(tunnel!.server!.logLines().some((l) => l.event === 'session.closed')).toBe(false);
  });

  it('a peer renamed by a reload keeps its session, and its next streams are logged under the new name', async () => {
    const { ports } = await setup(['alice']);
    const before = await openEchoing(ports.alice!);
    await tunnel!.server!.waitForEvent('stream.open', { peer: 'alice' });
    tunnel!.writePeers([{ ...tunnel!.peers[0]!, name: 'alice-laptop' }]);
    tunnel!.server!.kill('SIGHUP');
    await tunnel!.server!.waitForEvent('config.reload', { removed: 0 });
    await roundTrip(before, 'kept');
    const after = await openEchoing(ports.alice!);
    await tunnel!.server!.waitForEvent('stream.open', { peer: 'alice-laptop' });
    before.destroy();
    after.destroy();
  });

  it('a broken allowlist is refused and the old one stays in force', async () => {
    const { ports } = await setup(['alice']);
    fs.writeFileSync(tunnel!.path('peers.toml'), '[[peer]]\nname = "alice"\npublic_key = "not a key"\n');
    tunnel!.server!.kill('SIGHUP');
    const line = await tunnel!.server!.waitForEvent('config.reload_failed');
    expect(String(line.err)).toContain('peers.toml');
    const stream = await openEchoing(ports.alice!);
    stream.destroy();
  });
});

describe('client reload', () => {
  it('SIGHUP adds a forward and keeps the open stream of an unchanged one; a broken file changes nothing', async () => {
    echo = await startEchoServer();
    tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${echo.port}`] }] });
    await tunnel.startServer();
    const [portA, portB] = [await freePort(), await freePort()];
    const forward = (port: number): string => `[[forward]]\nlisten = "127.0.0.1:${port}"\ntarget = "127.0.0.1:${echo!.port}"\n`;
    const client = await tunnel.startClient('alice', forward(portA));
    const stream = await openEchoing(portA);
    tunnel.clientConfig('alice', forward(portA) + forward(portB));
    client.kill('SIGHUP');
    await client.waitForEvent('config.reload', { added: 1, removed: 0, kept: 1 });
    (await openEchoing(portB)).destroy();
    await roundTrip(stream, 'kept across the reload');
    fs.writeFileSync(tunnel.path('client-alice.toml'), '[client]\nserver_url = 3\n');
    client.kill('SIGHUP');
    await client.waitForEvent('config.reload_failed');
    await roundTrip(stream, 'still kept');
    (await openEchoing(portB)).destroy();
    stream.destroy();
  });
});

describe('shutdown and reconnect', () => {
  it('SIGTERM lets an open stream finish within the grace time, then exits 0', async () => {
    const { ports } = await setup(['alice']);
    const stream = await openEchoing(ports.alice!);
    tunnel!.server!.kill('SIGTERM');
    await tunnel!.server!.waitForEvent('daemon.stop');
    // New sessions are refused while draining, but the open stream still works.
    await roundTrip(stream, 'draining');
    stream.end();
    const { code } = await tunnel!.server!.exited;
    expect(code).toBe(0);
    expect(tunnel!.server!.logLines().some((l) => l.event === 'daemon.stop' && l.streamsCut === 0)).toBe(true);
  });

  it('the client keeps its listener while the server is down and reconnects to the restarted server', async () => {
    const { ports } = await setup(['alice']);
    const port = tunnel!.serverPort;
    const client = tunnel!.clients[0]!;
    await tunnel!.server!.stop();
    await client.waitForEvent('session.closed');
    // The listener is still there: a connection now waits for the tunnel (connect_wait_ms).
    const waiting = net.connect(ports.alice!, '127.0.0.1');
    waiting.on('error', () => {});
    await new Promise((r) => waiting.once('connect', r));
    await tunnel!.startServer(port);
    await waitUntil(() => client.logLines().filter((l) => l.event === 'session.open').length >= 2, 'the client to reconnect', 15_000);
    await roundTrip(waiting, 'after restart');
    waiting.destroy();
  });

  it('fails over to the next server URL when the first does not answer', async () => {
    echo = await startEchoServer();
    const dead = await refusingPort();
    tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${echo.port}`] }] });
    await tunnel.startServer();
    const file = tunnel.clientConfig('alice', `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echo.port}"\n`);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/^server_url = .*$/m, `server_url = ["ws://127.0.0.1:${dead}/twoway", "${tunnel.url}"]`));
    const client = twoway(['client', '--config', file]);
    tunnel.clients.push(client);
    const open = await client.waitForEvent('session.open');
    expect(open.url).toBe(tunnel.url);
    expect((await client.waitForEvent('connect.failed')).url).toBe(`ws://127.0.0.1:${dead}/twoway`);
    (await openEchoing(TestTunnel.listenerPorts(client)[0]!)).destroy();
  });

  it('a connection while the tunnel stays down gets a clear refusal after connect_wait_ms', async () => {
    echo = await startEchoServer();
    tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${echo.port}`] }], clientExtra: 'connect_wait_ms = 500' });
    tunnel.serverPort = await refusingPort();
    const client = await tunnel.startClient('alice', `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echo.port}"\n`, false);
    const port = TestTunnel.listenerPorts(client)[0]!;
    const socket = net.connect(port, '127.0.0.1');
    const outcome = await closedOutcome(socket);
    expect(outcome.error).toBe('ECONNRESET');
    expect(outcome.atMs).toBeGreaterThanOrEqual(400);
    await client.waitForEvent('stream.refused', { reason: 'tunnel-closed' });
  });
});

describe('HTTP CONNECT proxy', () => {
  it('the client reaches the server through a real tinyproxy', async () => {
    echo = await startEchoServer();
    const proxyPort = await freePort();
    tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${echo.port}`] }], clientExtra: `proxy = "http://127.0.0.1:${proxyPort}"` });
    await tunnel.startServer();
    fs.writeFileSync(
      tunnel.path('tinyproxy.conf'),
      `Port ${proxyPort}\nListen 127.0.0.1\nTimeout 60\nMaxClients 20\nAllow 127.0.0.1\nConnectPort ${tunnel.serverPort}\nLogFile "${tunnel.path('tinyproxy.log')}"\nLogLevel Connect\nPidFile "${tunnel.path('tinyproxy.pid')}"\n`,
    );
    const tinyproxy = fs.existsSync('/usr/bin/tinyproxy') ? '/usr/bin/tinyproxy' : '/usr/sbin/tinyproxy';
    const proxy = spawn(tinyproxy, ['-d', '-c', tunnel.path('tinyproxy.conf')], { stdio: 'ignore' });
    extra.push(proxy);
    await waitUntil(
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect(proxyPort, '127.0.0.1');
          s.on('connect', () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        }),
      'tinyproxy to listen',
    );
    const client = await tunnel.startClient('alice', `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echo.port}"\n`);
    const stream = await openEchoing(TestTunnel.listenerPorts(client)[0]!);
    stream.destroy();
    const log = fs.readFileSync(tunnel.path('tinyproxy.log'), 'utf8');
    expect(log).toMatch(new RegExp(`CONNECT.*127\\.0\\.0\\.1:${tunnel.serverPort}`));
  });
});
