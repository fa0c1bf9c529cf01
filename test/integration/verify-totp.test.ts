/**
 * User verification with TOTP through real daemons (docs/PROTOCOL.md section 13): a peer with
 * `verify = "totp"` is refused every stream with `unverified` until `twoway login`; codes are
 * computed here from the secret `twoway peers totp` enrolled, at the current time.
 */
import type net from 'node:net';
import { HOTP, Secret, URI, type TOTP } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTwoway } from '../helpers/processes.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';

let tunnel: TestTunnel;
let echo: net.Server;
let echoPort: number;
const uris = new Map<string, string>();

/** The code of the step `offset` steps from now (each step is accepted once: tests walk forward). */
function code(peer: string, offset = 0): string {
  const totp = URI.parse(uris.get(peer)!) as TOTP;
  return totp.generate({ timestamp: Date.now() + offset * totp.period * 1000 });
}

/** A six-digit code that is none of the three the server accepts now. */
function wrongCode(peer: string): string {
  const totp = URI.parse(uris.get(peer)!) as TOTP;
  const step = Math.floor(Date.now() / 1000 / totp.period);
  const near = new Set([-2, -1, 0, 1, 2].map((d) => HOTP.generate({ secret: Secret.fromBase32(totp.secret.base32), counter: step + d })));
  for (let n = 0; ; n++) {
    const c = String(n).padStart(6, '0');
    if (!near.has(c)) return c;
  }
}

function connect(peer: string, input = 'ping\n'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runTwoway(['connect', '--config', tunnel.path(`client-${peer}.toml`), `127.0.0.1:${echoPort}`], { input });
}

function login(peer: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runTwoway(['login', '--config', tunnel.path(`client-${peer}.toml`), ...args]);
}

beforeAll(async () => {
  ({ server: echo, port: echoPort } = await startEchoServer());
  const allow = [`127.0.0.1:${echoPort}`];
  tunnel = new TestTunnel({
    peers: [
      { name: 'alice', allow, extra: 'verify = "totp"\n' },
      { name: 'bob', allow, extra: 'verify = "totp"\n' },
      { name: 'plain', allow },
    ],
    serverExtra: '\n[verify]\nmax_attempts = 3\nlockout_ms = 600000\n',
  });
  await tunnel.startServer();
  for (const peer of ['alice', 'bob']) {
    const enrolled = await runTwoway(['peers', 'totp', peer, '--config', tunnel.path('server.toml')]);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    expect(enrolled.stdout).toMatch(/^otpauth:\/\/totp\//);
    uris.set(peer, enrolled.stdout.trim());
  }
  await Promise.all(['alice', 'bob', 'plain'].map((p) => tunnel.startClient(p)));
}, 60_000);

afterAll(async () => {
  await tunnel?.stop();
  echo?.close();
});

describe('a peer with verify = "totp"', () => {
  it('is refused every stream (unverified, naming twoway login) until twoway login, then admitted; a replayed code is refused', async () => {
    const before = await connect('alice');
    expect(before.code).toBe(5);
    expect(before.stderr).toContain('verification required: run twoway login');
    expect(tunnel.server!.logLines().some((l) => l.event === 'stream.refused' && l.reason === 'unverified' && l.peer === 'alice')).toBe(true);

    const first = code('alice', -1);
    const ok = await login('alice', ['--code', first]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^verified as alice until \d{4}-/);
    const after = await connect('alice');
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toBe('ping\n');

    const replay = await login('alice', ['--code', first]);
    expect(replay.code).toBe(4);
    expect(replay.stderr).toContain('replay');
    expect(tunnel.server!.logLines().some((l) => l.event === 'verify.accepted' && l.peer === 'alice' && l.method === 'totp')).toBe(true);
  });

  it('wrong codes lock the key after max_attempts, with an audit line; then even the right code is refused', async () => {
    const wrong = wrongCode('bob');
    const first = await login('bob', ['--code', wrong]);
    expect(first.code).toBe(4);
    expect(first.stderr).toContain('wrong-code');
    expect(first.stderr).toContain('2 attempts left');
    expect((await login('bob', ['--code', wrong])).code).toBe(4);
    const third = await login('bob', ['--code', wrong]);
    expect(third.code).toBe(4);
    expect(third.stderr).toContain('locked');
    const right = await login('bob', ['--code', code('bob')]);
    expect(right.code).toBe(4);
    expect(right.stderr).toContain('(locked)');
    expect(tunnel.server!.logLines().filter((l) => l.event === 'verify.locked' && l.peer === 'bob')).toHaveLength(1);
    expect((await connect('bob')).stderr).toContain('run twoway login');
  });

  it('a peer without verify needs no login', async () => {
    const plain = await login('plain', []);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain('needs no verification');
    expect((await connect('plain')).code).toBe(0);
  });
});
