/**
 * The SOCKS5 way in, driven by a real curl (--socks5-hostname: names are resolved by the server),
 * and `twoway demo`, the README's main command.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import type net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestTunnel } from '../helpers/tunnel.js';
import { runTwoway } from '../helpers/processes.js';

const run = promisify(execFile);
let tunnel: TestTunnel;
let web: http.Server;
let webPort: number;
let socksPort: number;

beforeAll(async () => {
  web = http.createServer((req, res) => {
    res.end(`hello from ${req.url} via ${req.headers.host}`);
  });
  // Dual-stack, so whichever address the server resolves "localhost" to answers.
  await new Promise<void>((r) => web.listen(0, '::', r));
  webPort = (web.address() as net.AddressInfo).port;
  tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`localhost:${webPort}`, `127.0.0.1:${webPort}`, `[::1]:${webPort}`] }] });
  await tunnel.startServer();
  const client = await tunnel.startClient('alice', '[[socks]]\nlisten = "127.0.0.1:0"\n');
  socksPort = TestTunnel.listenerPorts(client)[0]!;
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  web?.close();
});

describe('SOCKS5 with curl', () => {
  it('fetches a page by host name, resolved on the server side', async () => {
    const { stdout } = await run('curl', ['-sS', '--max-time', '15', '--socks5-hostname', `127.0.0.1:${socksPort}`, `http://localhost:${webPort}/page`]);
    expect(stdout).toBe(`hello from /page via localhost:${webPort}`);
    const line = await tunnel.server!.waitForEvent('stream.open', { target: `localhost:${webPort}` });
    expect(['127.0.0.1', '::1']).toContain(line.address);
  });

  it('fetches by IP address', async () => {
    const { stdout } = await run('curl', ['-sS', '--max-time', '15', '--socks5-hostname', `127.0.0.1:${socksPort}`, `http://127.0.0.1:${webPort}/ip`]);
    expect(stdout).toBe(`hello from /ip via 127.0.0.1:${webPort}`);
  });

  it('a target that is not permitted fails the SOCKS request and curl says so', async () => {
    const result = await run('curl', ['-sS', '--max-time', '15', '--socks5-hostname', `127.0.0.1:${socksPort}`, `http://127.0.0.1:${webPort + 1}/`]).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/SOCKS|not allowed|connection/i);
    await tunnel.server!.waitForEvent('stream.refused', { reason: 'not-permitted', target: `127.0.0.1:${webPort + 1}` });
  });
});

describe('twoway demo', () => {
  it('runs a working tunnel end to end and exits 0', async () => {
    const r = await runTwoway(['demo'], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/server key +[A-Za-z0-9+/]{43}=/);
    expect(r.stdout).toMatch(/client key +[A-Za-z0-9+/]{43}=/);
    expect(r.stdout).toMatch(/MiB each way through the tunnel, sha256 [0-9a-f]{16}\.\.\. matches/);
    expect(r.stdout).toMatch(/session +peer demo-client/);
    // A verified session: refused before the TOTP login, verified after it.
    expect(r.stdout).toMatch(/before login stream refused \(unverified\): verification required: run twoway login/);
    expect(r.stdout).toMatch(/verified +demo-client by totp until \d{4}-/);
    expect(r.stdout).toMatch(/verify\.accepted/);
    expect(r.stdout).toMatch(/stream\.open/);
    expect(r.stdout).toMatch(/^ok: /m);
  }, 60_000);
});
