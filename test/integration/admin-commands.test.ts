/**
 * The administrator's and the employee's commands through the real bin/twoway: genpsk, peers set
 * against a running server (sessions kept, only the streams no longer permitted reset), peers
 * edits keeping the file's owner and mode (as root and as another user), check-config --user and
 * its advice, `twoway init` and the client's defaults (config file, $XDG_RUNTIME_DIR control socket).
 * Needs root where it changes owners (the suite runs as root; without root those fail); `nobody`
 * plays the service user.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey, generateKeyPair, publicKeyFromPrivate } from '../../src/crypto/keys.js';
import { TWOWAY_BIN, runTwoway, stopAll, twoway } from '../helpers/processes.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';
import { tempDir } from '../helpers/temp-dir.js';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

/** Runs bin/twoway as uid/gid `uid` (setpriv, no supplementary groups). */
function twowayAs(uid: number, args: string[], cwd = os.tmpdir()): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, TWOWAY_BIN, ...args], {
    cwd,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1', HOME: '/nonexistent' },
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A world-traversable temp folder (mkdtemp's is 0700), so another user can reach what is inside. */
function openTempDir(): string {
  const dir = tempDir('admin');
  fs.chmodSync(dir, 0o755);
  return dir;
}

afterAll(stopAll);

describe('twoway genpsk', () => {
  let tunnel: TestTunnel | undefined;
  afterAll(() => tunnel?.stop());

  it('prints 32 random bytes in base64, a new one each time', async () => {
    const a = await runTwoway(['genpsk']);
    const b = await runTwoway(['genpsk']);
    expect(a.code).toBe(0);
    expect(a.stderr).toBe('');
    expect(a.stdout).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect(Buffer.from(a.stdout.trim(), 'base64')).toHaveLength(32);
    expect(a.stdout).not.toBe(b.stdout);
  });

  it('its output is a psk file both sides accept: check-config passes and the handshake with it succeeds', async () => {
    tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [], psk: true }], serverExtra: 'require_psk = true' });
    const psk = (await runTwoway(['genpsk'])).stdout;
    fs.writeFileSync(tunnel.path('alice.psk'), psk, { mode: 0o600 });
    expect((await runTwoway(['check-config', tunnel.path('peers.toml')])).code).toBe(0);
    await tunnel.startServer();
    const client = await tunnel.startClient('alice');
    expect(client.logLines().some((l) => l.event === 'session.open')).toBe(true);
    const r = await runTwoway(['check-config', tunnel.clientConfig('alice')]);
    expect(r.stdout).toContain('alice.psk');
  }, 30_000);
});

describe('twoway peers without a subcommand', () => {
  it('exits 2 with the usage on stderr', async () => {
    const r = await runTwoway(['peers']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/a subcommand is required/);
    expect(r.stderr).toMatch(/Usage: twoway peers/);
    for (const sub of ['list', 'add', 'set', 'remove']) expect(r.stderr).toMatch(new RegExp(`^  ${sub}\\b`, 'm'));
  });
});

describe('twoway peers set against a running server', () => {
  let tunnel: TestTunnel;
  let echoA: { server: net.Server; port: number };
  let echoB: { server: net.Server; port: number };
  let ports: number[];
  beforeAll(async () => {
    echoA = await startEchoServer();
    echoB = await startEchoServer();
    tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${echoA.port}`, `127.0.0.1:${echoB.port}`] }] });
    await tunnel.startServer();
    const client = await tunnel.startClient(
      'alice',
      `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echoA.port}"\n[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echoB.port}"\n`,
    );
    ports = TestTunnel.listenerPorts(client);
  }, 30_000);
  afterAll(async () => {
    await tunnel.stop();
    echoA.server.close();
    echoB.server.close();
  });

  /** An open stream through a forward port, with what came back and how it ended. */
  async function openStream(port: number): Promise<{ socket: net.Socket; received: () => string; ended: Promise<string> }> {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (c: Buffer) => (got += c.toString()));
    const ended = new Promise<string>((resolve) => {
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      socket.on('close', () => resolve('close'));
    });
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write('hello\n');
    await waitUntil(() => got === 'hello\n', 'the echo through the tunnel');
    return { socket, received: () => got, ended };
  }

  it('removing one rule resets only that stream; the other keeps flowing and the session stays', async () => {
    const a = await openStream(ports[0]!);
    const b = await openStream(ports[1]!);
    const before = JSON.parse((await runTwoway(['status', '--config', tunnel.path('server.toml'), '--json'])).stdout) as { sessions: Array<{ since: string }> };
    const set = await runTwoway(['peers', 'set', 'alice', '--remove-allow', `127.0.0.1:${echoB.port}`, '--config', tunnel.path('server.toml')]);
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/^changed; 1 peers on the allowlist\nthe running server reloaded/);
    await tunnel.server!.waitForEvent('stream.reset', { reason: 'not-permitted', target: `127.0.0.1:${echoB.port}` });
    expect(await b.ended).toBe('ECONNRESET');
    a.socket.write('still here\n');
    await waitUntil(() => a.received() === 'hello\nstill here\n', 'the permitted stream after the reload');
    const after = JSON.parse((await runTwoway(['status', '--config', tunnel.path('server.toml'), '--json'])).stdout) as {
      sessions: Array<{ since: string; streams: number }>;
    };
    expect(after.sessions).toHaveLength(1);
    expect(after.sessions[0]!.since).toBe(before.sessions[0]!.since);
    expect(tunnel.server!.logLines().filter((l) => l.event === 'auth.accepted')).toHaveLength(1);
    expect(tunnel.server!.logLines().filter((l) => l.event === 'stream.reset' && l.target === `127.0.0.1:${echoA.port}`)).toHaveLength(0);
    // The file says what the server now enforces: a new stream to B is refused, to A accepted.
    const list = JSON.parse((await runTwoway(['peers', 'list', '--json', '--config', tunnel.path('server.toml')])).stdout) as {
      peers: Array<{ allow: string[] }>;
    };
    expect(list.peers[0]!.allow).toEqual([`127.0.0.1:${echoA.port}`]);
    a.socket.end();
    expect(await a.ended).toBe('close');
  }, 30_000);

  it('--allow replaces the rules, --add-device / --device edit the grants, --psk-file and --no-psk set and drop the psk', async () => {
    const cfg = ['--config', tunnel.path('server.toml')];
    const list = async (): Promise<Array<{ name: string; allow: string[]; devices: string[]; pskFile?: string }>> =>
      (
        JSON.parse((await runTwoway(['peers', 'list', '--json', ...cfg])).stdout) as {
          peers: Array<{ name: string; allow: string[]; devices: string[]; pskFile?: string }>;
        }
      ).peers;
    expect(
      (await runTwoway(['peers', 'set', 'alice', '--allow', '10.0.0.0/8:22', '--allow', 'db.corp.example:5432', '--add-device', 'build1:ssh', ...cfg])).code,
    ).toBe(0);
    let p = (await list())[0]!;
    expect(p.allow).toEqual(['10.0.0.0/8:22', 'db.corp.example:5432']);
    expect(p.devices).toEqual(['build1:ssh']);
    fs.writeFileSync(tunnel.path('alice2.psk'), (await runTwoway(['genpsk'])).stdout, { mode: 0o600 });
    expect((await runTwoway(['peers', 'set', 'alice', '--device', '*:postgres', '--psk-file', tunnel.path('alice2.psk'), ...cfg])).code).toBe(0);
    p = (await list())[0]!;
    expect(p.devices).toEqual(['*:postgres']);
    expect(p.pskFile).toBe(tunnel.path('alice2.psk'));
    expect(fs.readFileSync(tunnel.path('peers.toml'), 'utf8')).toMatch(/psk_file = "alice2\.psk"/);
    expect((await runTwoway(['peers', 'set', 'alice', '--no-psk', ...cfg])).code).toBe(0);
    expect((await list())[0]!.pskFile).toBeUndefined();
  }, 30_000);

  it('refuses, changing nothing: an unknown peer, a rule it does not have, a bad rule, contradicting flags', async () => {
    const cfg = ['--config', tunnel.path('server.toml')];
    const before = fs.readFileSync(tunnel.path('peers.toml'), 'utf8');
    const unknown = await runTwoway(['peers', 'set', 'mallory', '--allow', '10.0.0.1:22', ...cfg]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/no peer named mallory/);
    const missing = await runTwoway(['peers', 'set', 'alice', '--remove-allow', '192.0.2.1:1', ...cfg]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/peer alice has no allow rule "192\.0\.2\.1:1" to remove/);
    const bad = await runTwoway(['peers', 'set', 'alice', '--add-allow', '10.0.0.0/33:22', ...cfg]);
    expect(bad.code).toBe(3);
    const both = await runTwoway(['peers', 'set', 'alice', '--psk-file', 'x', '--no-psk', ...cfg]);
    expect(both.code).toBe(2);
    expect(fs.readFileSync(tunnel.path('peers.toml'), 'utf8')).toBe(before);
    expect(tunnel.server!.logLines().filter((l) => l.event === 'session.closed')).toHaveLength(0);
  });
});

describe("peers edits keep the file's owner, group and mode", () => {
  let dir: string;
  const serverToml = (): string => path.join(dir, 'server.toml');
  beforeAll(() => {
    if (!isRoot) throw new Error('changing owners needs root: the suite runs as root (README, Set-up)');
    dir = openTempDir();
    fs.writeFileSync(path.join(dir, 'server.key'), `${encodeKey(generateKeyPair().privateKey)}\n`, { mode: 0o600 });
    fs.mkdirSync(path.join(dir, 'peers'), { mode: 0o750 });
    fs.writeFileSync(path.join(dir, 'peers', 'peers.toml'), '', { mode: 0o640 });
    fs.chownSync(path.join(dir, 'peers'), NOBODY, NOBODY);
    fs.chownSync(path.join(dir, 'peers', 'peers.toml'), NOBODY, NOBODY);
    fs.chmodSync(path.join(dir, 'peers', 'peers.toml'), 0o640);
    fs.writeFileSync(
      serverToml(),
      `[server]\nlisten = "127.0.0.1:0"\nprivate_key_file = "server.key"\npeers_file = "peers/peers.toml"\ncontrol_socket = "none.sock"\n`,
    );
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function stat(): { uid: number; gid: number; mode: number } {
    const s = fs.statSync(path.join(dir, 'peers', 'peers.toml'));
    return { uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 };
  }

  it('root adds, sets and removes: the service user keeps owning the file, mode 0640', async () => {
    const key = encodeKey(generateKeyPair().publicKey);
    expect((await runTwoway(['peers', 'add', 'alice', '--public-key', key, '--allow', '10.1.0.0/16:22', '--config', serverToml()])).code).toBe(0);
    expect(stat()).toEqual({ uid: NOBODY, gid: NOBODY, mode: 0o640 });
    expect((await runTwoway(['peers', 'set', 'alice', '--add-allow', '10.2.0.0/16:22', '--config', serverToml()])).code).toBe(0);
    expect(stat()).toEqual({ uid: NOBODY, gid: NOBODY, mode: 0o640 });
    expect((await runTwoway(['peers', 'remove', 'alice', '--config', serverToml()])).code).toBe(0);
    expect(stat()).toEqual({ uid: NOBODY, gid: NOBODY, mode: 0o640 });
    expect(fs.readdirSync(path.join(dir, 'peers'))).toEqual(['peers.toml']);
  });

  it('the service user itself edits it, in the folder it owns', () => {
    const key = encodeKey(generateKeyPair().publicKey);
    const add = twowayAs(NOBODY, ['peers', 'add', 'bob', '--public-key', key, '--config', serverToml()]);
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(stat()).toEqual({ uid: NOBODY, gid: NOBODY, mode: 0o640 });
    expect(twowayAs(NOBODY, ['peers', 'remove', 'bob', '--config', serverToml()]).code).toBe(0);
  });

  it('a user who could replace the file but not keep its owner is refused, and the file is unchanged', () => {
    fs.chownSync(path.join(dir, 'peers', 'peers.toml'), 0, 0);
    fs.chmodSync(path.join(dir, 'peers', 'peers.toml'), 0o644);
    try {
      const before = fs.readFileSync(path.join(dir, 'peers', 'peers.toml'), 'utf8');
      const r = twowayAs(NOBODY, ['peers', 'add', 'dan', '--public-key', encodeKey(generateKeyPair().publicKey), '--config', serverToml()]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/could not be written \(EPERM\): it is owned by uid 0 gid 0, which this user cannot keep; run as root or as its owner/);
      expect(fs.readFileSync(path.join(dir, 'peers', 'peers.toml'), 'utf8')).toBe(before);
      expect(stat()).toEqual({ uid: 0, gid: 0, mode: 0o644 });
      expect(fs.readdirSync(path.join(dir, 'peers'))).toEqual(['peers.toml']);
    } finally {
      fs.chownSync(path.join(dir, 'peers', 'peers.toml'), NOBODY, NOBODY);
      fs.chmodSync(path.join(dir, 'peers', 'peers.toml'), 0o640);
    }
  });

  it('a user who cannot write the folder gets a clear error and the file is unchanged', () => {
    fs.chownSync(path.join(dir, 'peers'), 0, NOBODY);
    fs.chmodSync(path.join(dir, 'peers'), 0o750);
    fs.chmodSync(path.join(dir, 'peers', 'peers.toml'), 0o660);
    try {
      const before = fs.readFileSync(path.join(dir, 'peers', 'peers.toml'), 'utf8');
      const r = twowayAs(NOBODY, ['peers', 'add', 'carol', '--public-key', encodeKey(generateKeyPair().publicKey), '--config', serverToml()]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/could not be written \(EACCES\): the folder .*peers must be writable by whoever edits the file/);
      expect(fs.readFileSync(path.join(dir, 'peers', 'peers.toml'), 'utf8')).toBe(before);
    } finally {
      fs.chownSync(path.join(dir, 'peers'), NOBODY, NOBODY);
      fs.chmodSync(path.join(dir, 'peers', 'peers.toml'), 0o640);
    }
  });
});

describe('check-config --user: key ownership checked against the service user', () => {
  let dir: string;
  let file: string;
  let key: string;
  beforeAll(() => {
    if (!isRoot) throw new Error('changing owners needs root: the suite runs as root (README, Set-up)');
    dir = openTempDir();
    key = path.join(dir, 'server.key');
    fs.writeFileSync(key, `${encodeKey(generateKeyPair().privateKey)}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'peers.toml'), '');
    file = path.join(dir, 'server.toml');
    fs.writeFileSync(file, `[server]\nlisten = "127.0.0.1:0"\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\n`);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs the command the error's advice names ("run: chown USER FILE"). */
  function followAdvice(stderr: string): void {
    const advice = /run: (chown \S+ \S+)$/m.exec(stderr);
    expect(advice).not.toBeNull();
    const [cmd, ...args] = advice![1]!.split(' ');
    execFileSync(cmd!, args);
  }

  it('a key owned by root fails for --user nobody; following the advice makes it pass, and the daemon as that user starts', async () => {
    fs.chownSync(key, 0, 0);
    const r = await runTwoway(['check-config', '--user', 'nobody', file]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`twoway: private key file ${key} is owned by uid 0, not by the service user nobody (uid ${NOBODY}); run: chown nobody ${key}\n`);
    followAdvice(r.stderr);
    const ok = await runTwoway(['check-config', '--user', 'nobody', file]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    // What check-config passed is what the daemon accepts when it runs as that user.
    expect(twowayAs(NOBODY, ['check-config', file]).code).toBe(0);
  });

  it('run as root without --user, a key owned by the service user is reported with advice that does not break the service', async () => {
    fs.chownSync(key, NOBODY, NOBODY);
    const r = await runTwoway(['check-config', file]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /owned by uid 65534, not by the user running twoway \(uid 0\); if the daemon runs as another user, check with: twoway check-config --user NAME FILE/,
    );
    expect((await runTwoway(['check-config', '--user', String(NOBODY), file])).code).toBe(0);
  });

  it('an unknown user is a usage error', async () => {
    const r = await runTwoway(['check-config', '--user', 'no-such-user-xyz', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('twoway: --user no-such-user-xyz: no such user\n');
  });
});

describe('twoway init and the client defaults', () => {
  let home: string;
  let tunnel: TestTunnel;
  let echo: { server: net.Server; port: number };
  const env = (): NodeJS.ProcessEnv => ({ HOME: home, XDG_CONFIG_HOME: '', XDG_RUNTIME_DIR: path.join(home, 'run'), TWOWAY_CONFIG: '' });
  beforeAll(async () => {
    home = tempDir('home');
    fs.mkdirSync(path.join(home, 'run'), { mode: 0o700 });
    echo = await startEchoServer();
    tunnel = new TestTunnel({ peers: [] });
    await tunnel.startServer();
  }, 30_000);
  afterAll(async () => {
    await tunnel.stop();
    echo.server.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('writes ~/.config/twoway/client.toml and client.key (0600) and prints the public key alone', async () => {
    const r = await runTwoway(['init', '--server-url', tunnel.url, '--server-public-key', encodeKey(tunnel.serverKey.publicKey)], { env: env() });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    const dir = path.join(home, '.config', 'twoway');
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'client.key')).mode & 0o777).toBe(0o600);
    const priv = Buffer.from(fs.readFileSync(path.join(dir, 'client.key'), 'utf8').trim(), 'base64');
    expect(r.stdout.trim()).toBe(encodeKey(publicKeyFromPrivate(priv)));
    expect(r.stderr).not.toContain(fs.readFileSync(path.join(dir, 'client.key'), 'utf8').trim());
    expect(fs.readFileSync(path.join(dir, 'client.toml'), 'utf8')).toMatch(/^private_key_file = "client\.key"$/m);
    expect((await runTwoway(['check-config', path.join(dir, 'client.toml')], { env: env() })).code).toBe(0);
  });

  it('refuses to overwrite without --force; --force rewrites client.toml and keeps the key', async () => {
    const dir = path.join(home, '.config', 'twoway');
    const key = fs.readFileSync(path.join(dir, 'client.key'), 'utf8');
    const toml = fs.readFileSync(path.join(dir, 'client.toml'), 'utf8');
    const again = await runTwoway(['init', '--server-url', 'ws://127.0.0.1:1/twoway', '--server-public-key', encodeKey(generateKeyPair().publicKey)], {
      env: env(),
    });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exist already; nothing was written/);
    expect(fs.readFileSync(path.join(dir, 'client.toml'), 'utf8')).toBe(toml);
    const forced = await runTwoway(['init', '--force', '--server-url', tunnel.url, '--server-public-key', encodeKey(tunnel.serverKey.publicKey)], {
      env: env(),
    });
    expect(forced.code).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'client.key'), 'utf8')).toBe(key);
    expect(forced.stdout.trim()).toBe(encodeKey(publicKeyFromPrivate(Buffer.from(key.trim(), 'base64'))));
  });

  it('honours XDG_CONFIG_HOME and --dir; a bad URL or key writes nothing', async () => {
    const xdg = path.join(home, 'xdg');
    const key = encodeKey(generateKeyPair().publicKey);
    expect(
      (await runTwoway(['init', '--server-url', 'wss://vpn.corp.example/twoway', '--server-public-key', key], { env: { ...env(), XDG_CONFIG_HOME: xdg } }))
        .code,
    ).toBe(0);
    expect(fs.existsSync(path.join(xdg, 'twoway', 'client.toml'))).toBe(true);
    const bad = await runTwoway(['init', '--dir', path.join(home, 'bad'), '--server-url', 'https://x/', '--server-public-key', key], { env: env() });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/server_url: expected a ws:\/\/ or wss:\/\/ URL/);
    expect(fs.existsSync(path.join(home, 'bad'))).toBe(false);
    const missing = await runTwoway(['init', '--server-url', 'wss://x/twoway'], { env: env() });
    expect(missing.code).toBe(2);
  });

  it('twoway client, status and connect without -c use that file and the socket under $XDG_RUNTIME_DIR', async () => {
    const pub = (await runTwoway(['pubkey'], { input: fs.readFileSync(path.join(home, '.config', 'twoway', 'client.key')) })).stdout.trim();
    expect(
      (await runTwoway(['peers', 'add', 'alice', '--public-key', pub, '--allow', `127.0.0.1:${echo.port}`, '--config', tunnel.path('server.toml')])).code,
    ).toBe(0);
    // A folder left too open (by hand, or an older version) is narrowed to 0700 at start.
    fs.mkdirSync(path.join(home, 'run', 'twoway'));
    fs.chmodSync(path.join(home, 'run', 'twoway'), 0o755);
    const client = twoway(['client'], { env: env(), cwd: os.tmpdir() });
    await client.waitForEvent('session.open');
    const socket = path.join(home, 'run', 'twoway', 'client.sock');
    expect(fs.statSync(path.join(home, 'run', 'twoway')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(socket).isSocket()).toBe(true);
    const status = await runTwoway(['status', '--json'], { env: env() });
    expect(status.code).toBe(0);
    expect((JSON.parse(status.stdout) as { role: string }).role).toBe('client');
    const connect = await runTwoway(['connect', `127.0.0.1:${echo.port}`], { env: env(), input: 'through the daemon\n' });
    expect(connect.stdout).toBe('through the daemon\n');
    expect(connect.code).toBe(0);
    // Through the daemon's session, not one of its own: the server saw one session.
    expect(tunnel.server!.logLines().filter((l) => l.event === 'auth.accepted')).toHaveLength(1);
    await client.stop();
  }, 30_000);

  it('without XDG_RUNTIME_DIR there is no control socket, as before', async () => {
    const dir = path.join(home, '.config', 'twoway');
    const r = await runTwoway(['status'], { env: { ...env(), XDG_RUNTIME_DIR: '' } });
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`twoway: ${path.join(dir, 'client.toml')}: [client].control_socket is not set, so there is no daemon to ask\n`);
  });
});
