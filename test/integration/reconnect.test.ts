/**
 * Reconnect on demand (issue 12 item 9): a client waiting out a long backoff tries at once when a
 * local connection arrives, or when `twoway reconnect` asks; a server that refuses the key is not
 * hammered by local connections (only an explicit `twoway reconnect` tries again early).
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTwoway, twoway, type Proc } from '../helpers/processes.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

/** Far beyond connect_wait_ms: without an immediate attempt, a local connection is refused. */
const LONG_BACKOFF = 'reconnect_min_ms = 30000\nreconnect_max_ms = 60000';

let tunnel: TestTunnel;
let echo: { server: net.Server; port: number };

beforeAll(async () => {
  echo = await startEchoServer();
  tunnel = new TestTunnel({
    peers: [
      { name: 'alice', allow: [`127.0.0.1:${echo.port}`] },
      { name: 'mallory', allow: [`127.0.0.1:${echo.port}`] },
    ],
  });
  // mallory has keys but is not on the allowlist yet.
  tunnel.writePeers(tunnel.peers.filter((p) => p.name === 'alice'));
  await tunnel.startServer();
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  echo?.server.close();
});

/** A client for `peer` with a long backoff and a forward to the echo target. */
async function startClient(peer: string, extra = ''): Promise<{ client: Proc; forwardPort: number; socket: string }> {
  const file = tunnel.clientConfig(peer, `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echo.port}"\n`, extra);
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('reconnect_min_ms = 200\nreconnect_max_ms = 1000', LONG_BACKOFF));
  const client = twoway(['client', '-c', file]);
  tunnel.clients.push(client);
  await client.waitForEvent('daemon.ready');
  return { client, forwardPort: TestTunnel.listenerPorts(client)[0]!, socket: tunnel.path(`client-${peer}.sock`) };
}

/** Sends `text` through the forward; resolves with the echo, or with what happened instead. */
function echoThrough(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString();
      if (got === text) s.end();
    });
    s.on('error', (err) => resolve(`error: ${err.message}`));
    s.on('close', () => resolve(got));
    s.write(text);
  });
}

const lines = (proc: Proc, event: string): Array<Record<string, unknown>> => proc.logLines().filter((l) => l.event === event);

/** Stops the server, waits until `client` schedules a long backoff, starts the server again. */
async function serverBounce(client: Proc): Promise<void> {
  const scheduled = lines(client, 'reconnect.scheduled').length;
  await tunnel.server!.stop();
  await client.waitFor((p) => lines(p, 'reconnect.scheduled').length > scheduled, 'the client to schedule its reconnect');
  expect(Number(lines(client, 'reconnect.scheduled').at(-1)!.delayMs)).toBeGreaterThanOrEqual(30_000);
  await tunnel.startServer(tunnel.serverPort);
}

describe('reconnect on demand', () => {
  let alice: Awaited<ReturnType<typeof startClient>>;

  it('a local connection during a long backoff reconnects at once and is carried', async () => {
    alice = await startClient('alice');
    await alice.client.waitForEvent('session.open');
    await serverBounce(alice.client);
    // connect_wait_ms is 10 s, the backoff 30 s: only an immediate attempt gets this through.
    expect(await echoThrough(alice.forwardPort, 'hello after the outage')).toBe('hello after the outage');
    expect(lines(alice.client, 'session.open')).toHaveLength(2);
    expect(lines(alice.client, 'reconnect.scheduled').filter((l) => l.trigger === 'on-demand')).toHaveLength(1);
  });

  it('`twoway reconnect` during a long backoff reconnects at once (exit 0, "connected")', async () => {
    await serverBounce(alice.client);
    const r = await runTwoway(['reconnect', '--socket', alice.socket]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('connected\n');
    expect(lines(alice.client, 'session.open')).toHaveLength(3);
    expect(lines(alice.client, 'reconnect.scheduled').filter((l) => l.trigger === 'requested')).toHaveLength(1);
    // Connected already: nothing to do, still exit 0.
    const again = await runTwoway(['reconnect', '-c', tunnel.path('client-alice.toml')]);
    expect(again).toMatchObject({ code: 0, stdout: 'connected\n' });
  });
});

describe('a server that refuses the key is not hammered', () => {
  it('local connections do not retry after an authentication refusal; `twoway reconnect` does', async () => {
    // Attempts as the client counts them (exact), and refusals as the server logged them (which
    // a refusal-log rate limit may only make fewer).
    const refusals = (): number => lines(tunnel.server!, 'auth.refused').length;
    const before = refusals();
    const mallory = await startClient('mallory', 'connect_wait_ms = 300');
    const attempts = (): number => lines(mallory.client, 'connect.failed').length;
    await waitUntil(() => refusals() === before + 1, 'the first refusal');
    await mallory.client.waitForEvent('reconnect.scheduled');
    expect(attempts()).toBe(1);
    // A bounded burst of local connections (each refused after connect_wait_ms).
    const results = await Promise.all(Array.from({ length: 20 }, () => echoThrough(mallory.forwardPort, 'x')));
    expect(results.every((r) => r !== 'x')).toBe(true);
    expect(attempts()).toBe(1);
    expect(refusals()).toBe(before + 1);
    expect(lines(mallory.client, 'reconnect.scheduled').filter((l) => l.trigger === 'on-demand')).toEqual([]);

    // Asked explicitly, it tries (and reports the refusal, exit 1).
    const refused = await runTwoway(['reconnect', '--socket', mallory.socket]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^twoway: reconnect failed: .*refused this client/);
    await mallory.client.waitFor(() => attempts() === 2, 'the second attempt logged');
    expect(refusals()).toBeLessThanOrEqual(before + 2);

    // The administrator adds the key: the next explicit reconnect gets a session at once.
    tunnel.writePeers(tunnel.peers);
    tunnel.server!.kill('SIGHUP');
    await tunnel.server!.waitForEvent('config.reload');
    const ok = await runTwoway(['reconnect', '--socket', mallory.socket]);
    expect(ok, ok.stderr).toMatchObject({ code: 0, stdout: 'connected\n' });
    expect(await echoThrough(mallory.forwardPort, 'now allowed')).toBe('now allowed');
  });
});
