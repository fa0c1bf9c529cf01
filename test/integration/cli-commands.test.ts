/**
 * Every CLI command through the real bin/twoway: exit codes, output, --json shapes, --help
 * examples, check-config on the shipped examples and on broken files, and peers add/remove/list
 * against a running server.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey, generateKeyPair } from '../../src/crypto/keys.js';
import { REPO_ROOT, runTwoway } from '../helpers/processes.js';
import { TestTunnel } from '../helpers/tunnel.js';

const COMMANDS = ['keygen', 'pubkey', 'genpsk', 'init', 'server', 'client', 'connect', 'reconnect', 'status', 'check-config', 'peers', 'demo'];

describe('twoway --help, --version and usage errors', () => {
  it('prints the version of package.json', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runTwoway(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('lists every command', async () => {
    const r = await runTwoway(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
  });

  it.each(COMMANDS.filter((c) => c !== 'peers'))('`%s --help` shows an example', async (command) => {
    const r = await runTwoway([command, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Example/);
  });

  it.each(['list', 'add', 'set', 'remove'])('`peers %s --help` shows an example', async (sub) => {
    const r = await runTwoway(['peers', sub, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Example/);
  });

  it('an unknown command or option exits 2 with one line of explanation', async () => {
    const a = await runTwoway(['frobnicate']);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/unknown command/);
    const b = await runTwoway(['keygen', '--bogus']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/unknown option/);
  });
});

describe('check-config', () => {
  let tunnel: TestTunnel;
  beforeAll(() => {
    tunnel = new TestTunnel();
  });
  afterAll(() => tunnel.stop());

  it('accepts a valid server config with its peers and key files', async () => {
    fs.writeFileSync(
      tunnel.path('server.toml'),
      '[server]\nlisten = "127.0.0.1:0"\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\ncontrol_socket = "s.sock"\n',
    );
    const r = await runTwoway(['check-config', tunnel.path('server.toml')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/valid server file/);
  });

  it('refuses a private key readable by others, naming the file and the fix (exit 3)', async () => {
    fs.chmodSync(tunnel.path('server.key'), 0o644);
    try {
      const r = await runTwoway(['check-config', tunnel.path('server.toml')]);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(tunnel.path('server.key'));
      expect(r.stderr).toMatch(/chmod 600/);
      expect(r.stderr).not.toContain(fs.readFileSync(tunnel.path('server.key'), 'utf8').trim());
    } finally {
      fs.chmodSync(tunnel.path('server.key'), 0o600);
    }
  });

  it('refuses an unknown key with the file and the key named', async () => {
    fs.writeFileSync(
      tunnel.path('typo.toml'),
      '[server]\nlisten = "127.0.0.1:0"\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\nlisten_port = 3\n',
    );
    const r = await runTwoway(['check-config', tunnel.path('typo.toml')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('typo.toml');
    expect(r.stderr).toContain('listen_port');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses a bad access rule, naming the peer', async () => {
    fs.writeFileSync(
      tunnel.path('bad-peers.toml'),
      `[[peer]]\nname = "carol"\npublic_key = "${encodeKey(generateKeyPair().publicKey)}"\nallow = ["10.0.0.0/33:22"]\n`,
    );
    const r = await runTwoway(['check-config', tunnel.path('bad-peers.toml')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('carol');
    expect(r.stderr).toContain('10.0.0.0/33');
  });
});

describe('status and peers against a running server', () => {
  let tunnel: TestTunnel;
  beforeAll(async () => {
    tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: ['127.0.0.1:9'] }] });
    await tunnel.startServer();
    await tunnel.startClient('alice', '[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:9"\n');
  }, 30_000);
  afterAll(() => tunnel.stop());

  it('the control sockets are private to their owner (mode 0600)', () => {
    expect(fs.statSync(tunnel.path('server.sock')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(tunnel.path('client-alice.sock')).mode & 0o777).toBe(0o600);
  });

  it('status --json on the server lists the session with peer, fingerprint and counters', async () => {
    const r = await runTwoway(['status', '--config', tunnel.path('server.toml'), '--json']);
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout) as { role: string; sessions: Array<Record<string, unknown>> };
    expect(status.role).toBe('server');
    expect(status.sessions).toHaveLength(1);
    const s = status.sessions[0]!;
    expect(s.peer).toBe('alice');
    expect(s.fingerprint).toBe(encodeKey(tunnel.peers[0]!.key.publicKey));
    expect(s.state).toBe('established');
    for (const k of ['remote', 'since', 'lastHandshake', 'rekeys', 'bytesIn', 'bytesOut', 'streams']) expect(s).toHaveProperty(k);
  });

  it('status on the client shows the forward and the connection, as text', async () => {
    const r = await runTwoway(['status', '--config', tunnel.path('client-alice.toml')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^client: connected to ws:\/\/127\.0\.0\.1:\d+\/twoway/);
    expect(r.stdout).toMatch(/forward: 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:9/);
  });

  it('status without a daemon exits 6 with a clear sentence', async () => {
    const r = await runTwoway(['status', '--socket', tunnel.path('nothing.sock')]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/^twoway: control socket .*nothing\.sock: no such socket/);
  });

  it('peers add, list --json and remove edit the file and reload the running server', async () => {
    const key = generateKeyPair();
    const add = await runTwoway([
      'peers',
      'add',
      'dave',
      '--public-key',
      encodeKey(key.publicKey),
      '--allow',
      '10.0.0.0/8:22',
      '--config',
      tunnel.path('server.toml'),
    ]);
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toMatch(/reloaded/);
    await tunnel.server!.waitForEvent('config.reload', { peers: 2 });
    const list = await runTwoway(['peers', 'list', '--json', '--config', tunnel.path('server.toml')]);
    const listed = JSON.parse(list.stdout) as { peers: Array<{ name: string; publicKey: string; allow: string[] }> };
    expect(listed.peers.map((p) => p.name)).toEqual(['alice', 'dave']);
    expect(listed.peers[1]!.allow).toEqual(['10.0.0.0/8:22']);
    const dup = await runTwoway(['peers', 'add', 'dave', '--public-key', encodeKey(generateKeyPair().publicKey), '--config', tunnel.path('server.toml')]);
    expect(dup.code).toBe(3);
    expect(dup.stderr).toMatch(/dave exists already/);
    const rm = await runTwoway(['peers', 'remove', 'dave', '--config', tunnel.path('server.toml')]);
    expect(rm.code).toBe(0);
    await tunnel.server!.waitForEvent('config.reload', { peers: 1 });
  });
});
