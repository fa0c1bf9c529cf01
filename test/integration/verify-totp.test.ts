/**
 * User verification with TOTP through real daemons (docs/PROTOCOL.md section 13): a peer with
 * `verify = "totp"` is refused every stream with `unverified` until `twoway login`; codes are
 * computed here from the secret `twoway peers totp` enrolled, at the current time.
 */
import net from 'node:net';
import { pino } from 'pino';
import { HOTP, Secret, URI, type TOTP } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/control-client.js';
import { MuxSession } from '../../src/mux/session.js';
import { connectSecure } from '../../src/session/connect-secure.js';
import { VERIFY_TARGET, verifyRequest } from '../../src/verify/verify-exchange.js';
import { runTwoway, type Proc } from '../helpers/processes.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

let tunnel: TestTunnel;
let echo: net.Server;
let echoPort: number;
let echo2: net.Server;
let echo2Port: number;
const clients = new Map<string, Proc>();
const uris = new Map<string, string>();

/**
 * The code of the step `offset` steps from now (each step is accepted once: a test that logs in
 * twice uses 0 then 1; never -1, which a step boundary crossed before the server checks it would
 * push out of the window).
 */
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

function connect(peer: string, port = echoPort, input = 'ping\n'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runTwoway(['connect', '--config', tunnel.path(`client-${peer}.toml`), `127.0.0.1:${port}`], { input });
}

async function serverStatus(): Promise<{ sessions: Array<{ peer: string; verification: { method: string; identity: string; expiresAt: string } | null }> }> {
  const out = await runTwoway(['status', '--json', '--config', tunnel.path('server.toml')]);
  expect(out.code, out.stderr).toBe(0);
  return JSON.parse(out.stdout) as never;
}

function login(peer: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runTwoway(['login', '--config', tunnel.path(`client-${peer}.toml`), ...args]);
}

beforeAll(async () => {
  ({ server: echo, port: echoPort } = await startEchoServer());
  ({ server: echo2, port: echo2Port } = await startEchoServer());
  const allow = [`127.0.0.1:${echoPort}`];
  const totp = 'verify = "totp"\n';
  tunnel = new TestTunnel({
    peers: [
      { name: 'alice', allow, extra: totp },
      { name: 'bob', allow, extra: totp },
      { name: 'carol', allow, extra: totp },
      { name: 'dave', allow, extra: `${totp}verify_valid_ms = 15000\n` },
      { name: 'erin', allow: [...allow, `127.0.0.1:${echo2Port} verified<10s`], extra: totp },
      { name: 'frank', allow, extra: totp },
      { name: 'plain', allow },
    ],
    serverExtra: 'metrics_listen = "127.0.0.1:0"\n[verify]\nmax_attempts = 3\nlockout_ms = 600000\n',
  });
  await tunnel.startServer();
  for (const peer of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) {
    const enrolled = await runTwoway(['peers', 'totp', peer, '--config', tunnel.path('server.toml')]);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    expect(enrolled.stdout).toMatch(/^otpauth:\/\/totp\//);
    uris.set(peer, enrolled.stdout.trim());
  }
  const forward = `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echoPort}"\n`;
  for (const peer of ['alice', 'bob', 'dave', 'erin', 'frank', 'plain']) clients.set(peer, await tunnel.startClient(peer, peer === 'frank' ? forward : ''));
}, 60_000);

afterAll(async () => {
  await tunnel?.stop();
  echo?.close();
  echo2?.close();
});

describe('a peer with verify = "totp"', () => {
  it('is refused every stream (unverified, naming twoway login) until twoway login, then admitted; a replayed code is refused', async () => {
    const before = await connect('alice');
    expect(before.code).toBe(5);
    expect(before.stderr).toContain('verification required: run twoway login');
    expect(tunnel.server!.logLines().some((l) => l.event === 'stream.refused' && l.reason === 'unverified' && l.peer === 'alice')).toBe(true);

    const first = code('alice');
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

  it('a code sent with another session’s binding is refused (and not spent): the verification is bound to its session', async () => {
    const carol = tunnel.peers.find((p) => p.name === 'carol')!;
    const logger = pino({ level: 'silent' });
    const open = async (): Promise<{ mux: MuxSession; binding: string }> => {
      const session = await connectSecure({ url: tunnel.url, staticKeyPair: carol.key, serverPublicKeys: [tunnel.serverKey.publicKey], logger });
      return { mux: new MuxSession(session, { role: 'client', logger }), binding: Buffer.from(session.binding).toString('base64url') };
    };
    const a = await open();
    // The server refuses a key's initiations closer than 20 ms apart (the replay guard).
    await new Promise((r) => setTimeout(r, 100));
    const b = await open();
    try {
      expect(a.binding).not.toBe(b.binding);
      const c = code('carol');
      const elsewhere = await verifyRequest(b.mux.openStream(VERIFY_TARGET), { v: 1, method: 'totp', code: c, binding: a.binding });
      expect(elsewhere).toMatchObject({ ok: false, error: 'bad-binding' });
      const query = await verifyRequest(b.mux.openStream(VERIFY_TARGET), { v: 1, method: 'query', binding: b.binding });
      expect(query).toMatchObject({ ok: true, required: 'totp', verified: false });
      const own = await verifyRequest(a.mux.openStream(VERIFY_TARGET), { v: 1, method: 'totp', code: c, binding: a.binding });
      expect(own).toMatchObject({ ok: true, identity: 'carol' });
      expect(tunnel.server!.logLines().some((l) => l.event === 'verify.refused' && l.peer === 'carol' && l.error === 'bad-binding')).toBe(true);
    } finally {
      a.mux.close();
      b.mux.close();
    }
  });

  it('a verification survives a reconnect of the key within verify_valid_ms and expires after it', async () => {
    const ok = await login('dave', ['--code', code('dave')]);
    expect(ok.code, ok.stderr).toBe(0);
    const shown = (await serverStatus()).sessions.find((s) => s.peer === 'dave')!.verification!;
    expect(shown.method).toBe('totp');
    expect(shown.identity).toBe('dave');
    expect((await connect('dave')).code).toBe(0);
    // A new client process: a new session (a new handshake, a new binding) of the same key.
    await clients.get('dave')!.stop();
    clients.set('dave', await tunnel.startClient('dave'));
    expect(tunnel.server!.logLines().filter((l) => l.event === 'session.open' && l.peer === 'dave')).toHaveLength(2);
    const again = await connect('dave');
    // Admitted on the new session: the gate found the key's verification, made on the old one.
    expect(again.code, again.stderr).toBe(0);
    let last = again;
    await waitUntil(async () => (last = await connect('dave')).code === 5, 'the verification expires', 30_000);
    expect(last.stderr).toContain('run twoway login');
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(shown.expiresAt));
    expect((await serverStatus()).sessions.find((s) => s.peer === 'dave')!.verification).toBeNull();
  });

  it('a rule with verified<10s grants only a fresh verification (step-up); rules without it stay', async () => {
    expect((await connect('erin', echo2Port)).stderr).toContain('run twoway login');
    expect((await login('erin', ['--code', code('erin')])).code).toBe(0);
    const fresh = await connect('erin', echo2Port);
    expect(fresh.code, fresh.stderr).toBe(0);
    let stale = fresh;
    await waitUntil(async () => (stale = await connect('erin', echo2Port)).code === 5, 'the step-up rule stops granting', 30_000);
    expect(stale.stderr).toContain('not permitted');
    expect((await connect('erin')).code).toBe(0);
  });

  it('twoway unverify --peer and --identity close the live sessions at once', async () => {
    const frank = clients.get('frank')!;
    const [port] = TestTunnel.listenerPorts(frank);
    for (const [step, target] of [
      [0, ['--peer', 'frank']],
      [1, ['--identity', 'frank']],
    ] as const) {
      await frank.waitFor(() => frank.logLines().filter((l) => l.event === 'session.open').length === step + 1, 'frank connected');
      expect((await login('frank', ['--code', code('frank', step)])).code).toBe(0);
      const socket = net.connect(port!, '127.0.0.1');
      socket.on('error', () => {});
      await new Promise<void>((resolve) => socket.once('data', () => resolve()).write('x'));
      const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
      const out = await runTwoway(['unverify', ...target, '--config', tunnel.path('server.toml')]);
      const returned = Date.now();
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toBe('1 verifications dropped, 1 sessions closed\n');
      expect((await closed) - returned).toBeLessThan(1000);
      expect(tunnel.server!.logLines().some((l) => l.event === 'verify.revoked')).toBe(true);
    }
    await frank.waitFor(() => frank.logLines().filter((l) => l.event === 'session.open').length === 3, 'frank reconnected');
    expect((await connect('frank')).stderr).toContain('run twoway login');
  });

  it('twoway login exits 1 for a malformed code and 6 without a daemon', async () => {
    const bad = await login('alice', ['--code', 'abc']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('bad-request');
    // Without --code and without a terminal, the code is the first line on stdin.
    const piped = await runTwoway(['login', '--config', tunnel.path('client-alice.toml')], { input: `${code('alice', 1)}\n` });
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).toContain('verified as alice');
    const none = await runTwoway(['login', '--socket', tunnel.path('nothing.sock'), '--code', '123456']);
    expect(none.code).toBe(6);
  });

  it('the metrics count verifications by method and outcome, and the verified sessions', async () => {
    const port = Number((await tunnel.server!.waitForEvent('listen', { kind: 'metrics' })).port);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = (series: string): number => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    expect(value('twoway_verifications_total{method="totp",outcome="accepted"}')).toBeGreaterThanOrEqual(4);
    expect(value('twoway_verifications_total{method="totp",outcome="replay"}')).toBe(1);
    expect(value('twoway_verifications_total{method="totp",outcome="locked"}')).toBe(2);
    expect(value('twoway_verifications_total{method="totp",outcome="bad-binding"}')).toBe(1);
    const verified = (await serverStatus()).sessions.filter((s) => s.verification !== null).length;
    expect(verified).toBeGreaterThanOrEqual(1);
    expect(value('twoway_verified_sessions')).toBe(verified);
  });

  it('a peer without verify needs no login', async () => {
    const plain = await login('plain', []);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain('needs no verification');
    expect((await connect('plain')).code).toBe(0);
  });

  it('twoway peers set --verify / --verify-valid / --identity edit the peer and the running server applies them', async () => {
    const config = ['--config', tunnel.path('server.toml')];
    const set = await runTwoway([
      'peers',
      'set',
      'plain',
      '--verify',
      'totp',
      '--verify-valid',
      '30m',
      '--add-allow',
      `127.0.0.1:${echo2Port} verified<15m`,
      ...config,
    ]);
    expect(set.code, set.stderr).toBe(0);
    const list = await runTwoway(['peers', 'list', ...config]);
    expect(list.stdout).toContain('verify: totp, valid 1800000 ms');
    expect(list.stdout).toContain(`127.0.0.1:${echo2Port} verified<15m`);
    expect((await connect('plain')).stderr).toContain('run twoway login');
    const identity = await runTwoway(['peers', 'set', 'plain', '--identity', 'x@corp.example', ...config]);
    expect(identity.code).toBe(3);
    expect(identity.stderr).toContain('needs verify = "oidc"');
    const oidc = await runTwoway(['peers', 'set', 'plain', '--verify', 'oidc', '--identity', 'x@corp.example', '--json', ...config]);
    expect(oidc.code, oidc.stderr).toBe(0);
    expect((JSON.parse(oidc.stdout) as { peers: Array<Record<string, unknown>> }).peers.find((p) => p.name === 'plain')).toMatchObject({
      verify: 'oidc',
      verifyValidMs: 1_800_000,
      identity: 'x@corp.example',
    });
    // This server has no identity provider: the client daemon's verify command gets the contract's refusal.
    const begin = await controlRequest(tunnel.path('client-plain.sock'), {
      cmd: 'verify',
      message: { method: 'oidc', step: 'begin', redirect_uri: 'http://127.0.0.1:1/callback', code_challenge: 'x'.repeat(43) },
    });
    expect(begin).toEqual({ ok: true, answer: { ok: false, error: 'oidc-failed', detail: 'OIDC is not configured on the server' } });
    const qr = await runTwoway(['peers', 'totp', 'plain', '--qr', ...config]);
    expect(qr.code, qr.stderr).toBe(0);
    expect(qr.stdout).toMatch(/^otpauth:\/\/totp\/twoway:plain\?/);
    expect(qr.stderr).toMatch(/[▀▄█]/);
    expect(qr.stderr).toContain('plain does not require it yet'); // it is an oidc peer now
    const none = await runTwoway(['peers', 'set', 'plain', '--verify', 'none', ...config]);
    expect(none.code, none.stderr).toBe(0);
    expect((await connect('plain')).code).toBe(0);
  });
});
