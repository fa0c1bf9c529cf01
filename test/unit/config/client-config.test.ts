import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultClientConfigFile, loadClientConfig } from '../../../src/config/client-config.js';
import { randomKey, thrown, useTempDir, write } from '../../helpers/config-fixture.js';

const KEY = randomKey();
const base = (extra = '', client = ''): string => `[client]
server_url = "wss://vpn.example.com/twoway"
server_public_key = "${KEY}"
private_key_file = "client.key"
${client}
${extra}`;

describe('loadClientConfig', () => {
  const tempDir = useTempDir();

  it('reads a minimal file with defaults', () => {
    const dir = tempDir();
    const c = loadClientConfig(write(dir, 'c.toml', base()));
    expect(c.serverUrls).toEqual(['wss://vpn.example.com/twoway']);
    expect(c.serverPublicKeys).toEqual([KEY]);
    expect(c.privateKeyFile).toBe(path.join(dir, 'client.key'));
    expect(c.reconnectMinMs).toBe(1000);
    expect(c.reconnectMaxMs).toBe(60000);
    expect(c.connectWaitMs).toBe(10000);
    expect(c.forwards).toEqual([]);
    expect(c.controlSocket).toBeUndefined();
    expect(c.limits.rekeyAfterMs).toBe(120000);
    expect(Object.isFrozen(c.serverUrls)).toBe(true);
  });

  it('accepts lists of URLs and keys (failover and pins)', () => {
    const dir = tempDir();
    const k2 = randomKey();
    const text = base()
      .replace('server_url = "wss://vpn.example.com/twoway"', 'server_url = ["wss://a.example/t", "ws://127.0.0.1:8080/t"]')
      .replace(`server_public_key = "${KEY}"`, `server_public_key = ["${KEY}", "${k2}"]`);
    const c = loadClientConfig(write(dir, 'c.toml', text));
    expect(c.serverUrls).toEqual(['wss://a.example/t', 'ws://127.0.0.1:8080/t']);
    expect(c.serverPublicKeys).toEqual([KEY, k2]);
  });

  it('reads forwards, socks, and IPv6 targets', () => {
    const dir = tempDir();
    const c = loadClientConfig(write(dir, 'c.toml', base('[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "[fd00::1]:22"\n[[socks]]\nlisten = "[::1]:1080"\n')));
    expect(c.forwards).toEqual([{ listen: { host: '127.0.0.1', port: 0 }, access: { allowOtherUsers: false, allowUids: [] }, target: '[fd00::1]:22' }]);
    expect(c.socks).toEqual([{ listen: { host: '::1', port: 1080 }, access: { allowOtherUsers: false, allowUids: [] } }]);
  });

  it('reads unix socket listeners (relative to the file) and the owner-check keys', () => {
    const dir = tempDir();
    const c = loadClientConfig(
      write(
        dir,
        'c.toml',
        base(
          '[[forward]]\nlisten = "unix:run/db.sock"\ntarget = "db:5432"\n[[forward]]\nlisten = "/run/user/1000/ssh.sock"\ntarget = "git:22"\n' +
            '[[socks]]\nlisten = "127.0.0.1:1080"\nallow_uids = [1000, 1001]\n[[socks]]\nlisten = "127.0.0.1:1081"\nallow_other_users = true\n',
        ),
      ),
    );
    expect(c.forwards.map((f) => f.listen)).toEqual([{ path: path.join(dir, 'run', 'db.sock') }, { path: '/run/user/1000/ssh.sock' }]);
    expect(c.socks.map((s) => s.access)).toEqual([
      { allowOtherUsers: false, allowUids: [1000, 1001] },
      { allowOtherUsers: true, allowUids: [] },
    ]);
  });

  it('takes the proxy from the config, else from HTTPS_PROXY / https_proxy', () => {
    const dir = tempDir();
    const file = write(dir, 'c.toml', base());
    expect(loadClientConfig(file, { env: { https_proxy: 'http://p:3128' } })).toMatchObject({ proxy: 'http://p:3128', proxySource: 'env' });
    expect(loadClientConfig(file, { env: { HTTPS_PROXY: 'http://P:1', https_proxy: 'http://p:2' } }).proxy).toBe('http://P:1');
    const withProxy = write(dir, 'd.toml', base('', 'proxy = "http://proxy.corp:3128"'));
    expect(loadClientConfig(withProxy, { env: { HTTPS_PROXY: 'http://other:1' } })).toMatchObject({ proxy: 'http://proxy.corp:3128', proxySource: 'config' });
    expect(loadClientConfig(file, { env: {} }).proxy).toBeUndefined();
  });

  it('never echoes a proxy URL (it may hold a password)', () => {
    const dir = tempDir();
    const err = thrown(() => loadClientConfig(write(dir, 'c.toml', base('', 'proxy = "socks5://user:hunter2@p:1"'))));
    expect(err.message).toMatch(/\[client\]\.proxy: expected an http:\/\/ proxy URL, got scheme socks5:/);
    expect(err.message).not.toContain('hunter2');
    const envErr = thrown(() => loadClientConfig(write(dir, 'd.toml', base()), { env: { HTTPS_PROXY: 'user:hunter2@p' } }));
    expect(envErr.message).toMatch(/environment variable HTTPS_PROXY: /);
    expect(envErr.message).not.toContain('hunter2');
  });

  const cases: [string, string, RegExp][] = [
    [
      'a bad forward listen',
      base('[[forward]]\nlisten = "127.0.0.1:1"\ntarget = "a:1"\n[[forward]]\nlisten = "abc"\ntarget = "b:2"\n'),
      /c\.toml: \[forward\.2\]\.listen: expected "host:port" \(IPv6 as "\[::1\]:port"\), "unix:PATH" or an absolute path, got "abc"$/,
    ],
    [
      'an owner-check key on a unix listener',
      base('[[socks]]\nlisten = "unix:/run/s.sock"\nallow_uids = [1000]\n'),
      /\[socks\.1\]\.allow_uids: applies to TCP listeners only/,
    ],
    [
      'a uid that is not a number',
      base('[[socks]]\nlisten = "127.0.0.1:1"\nallow_uids = ["alice"]\n'),
      /\[socks\.1\]\.allow_uids\[0\]: expected a numeric uid/,
    ],
    [
      'a unix path too long for sun_path',
      base(`[[socks]]\nlisten = "unix:/${'x'.repeat(120)}"\n`),
      /\[socks\.1\]\.listen: a unix socket path is at most 107 bytes/,
    ],
    [
      'the same unix path twice',
      base('[[forward]]\nlisten = "/run/a.sock"\ntarget = "a:1"\n[[socks]]\nlisten = "unix:/run/a.sock"\n'),
      /\[socks\.1\]\.listen: unix:\/run\/a\.sock is already used by \[forward\.1\]/,
    ],
    ['a bad target', base('[[forward]]\nlisten = "127.0.0.1:1"\ntarget = "db"\n'), /\[forward\.1\]\.target: expected "host:port"/],
    [
      'a duplicate listen address',
      base('[[forward]]\nlisten = "127.0.0.1:1080"\ntarget = "a:1"\n[[socks]]\nlisten = "127.0.0.1:1080"\n'),
      /\[socks\.1\]\.listen: 127\.0\.0\.1:1080 is already used by \[forward\.1\]/,
    ],
    ['an unknown forward key', base('[[forward]]\nlisten = "127.0.0.1:1"\ntarget = "a:1"\nport = 3\n'), /\[forward\.1\]\.port: unknown key/],
    ['a server-only limit', base('[limits]\nmax_unauthenticated = 3\n'), /\[limits\]\.max_unauthenticated: applies to the server only/],
    [
      'an http URL',
      base().replace('wss://vpn.example.com/twoway', 'https://vpn.example.com/'),
      /\[client\]\.server_url: expected a ws:\/\/ or wss:\/\/ URL, got scheme https:/,
    ],
    ['an empty URL list', base().replace('"wss://vpn.example.com/twoway"', '[]'), /\[client\]\.server_url: expected a string or a non-empty list/],
    [
      'reconnect max below min',
      base('', 'reconnect_min_ms = 5000\nreconnect_max_ms = 100'),
      /\[client\]\.reconnect_max_ms: must be at least reconnect_min_ms \(5000\), got 100/,
    ],
  ];
  it.each(cases)('refuses %s', (_what, text, message) => {
    const dir = tempDir();
    const err = thrown(() => loadClientConfig(write(dir, 'c.toml', text)));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toMatch(message);
    expect(err.message.startsWith(path.join(dir, 'c.toml'))).toBe(true);
  });

  it('refuses a bad server key without echoing it', () => {
    const dir = tempDir();
    const secretish = `${KEY.slice(0, 42)}B=`; // 44 characters but not canonical
    for (const bad of [secretish, 'c2VjcmV0LXZhbHVlLTEyMw==', `${KEY}x`]) {
      const err = thrown(() => loadClientConfig(write(dir, 'c.toml', base().replace(KEY, bad))));
      expect(err.message).toMatch(/\[client\]\.server_public_key: expected a base64 32-byte key/);
      expect(err.message).not.toContain(bad);
      expect(err.message).not.toContain(bad.slice(0, 12));
    }
  });
});

describe('client defaults from the environment', () => {
  const tempDir = useTempDir();

  it('control_socket: $XDG_RUNTIME_DIR/twoway/client.sock when set (absolute), none otherwise; an explicit key wins', () => {
    const dir = tempDir();
    const file = write(dir, 'c.toml', base());
    const c = loadClientConfig(file, { env: { XDG_RUNTIME_DIR: '/run/user/1000' } });
    expect(c.controlSocket).toBe('/run/user/1000/twoway/client.sock');
    expect(c.controlSocketDir).toBe('/run/user/1000/twoway');
    expect(loadClientConfig(file, { env: {} }).controlSocket).toBeUndefined();
    expect(loadClientConfig(file, { env: { XDG_RUNTIME_DIR: 'relative/dir' } }).controlSocket).toBeUndefined();
    const explicit = loadClientConfig(write(dir, 'd.toml', base('', 'control_socket = "my.sock"')), { env: { XDG_RUNTIME_DIR: '/run/user/1000' } });
    expect(explicit.controlSocket).toBe(path.join(dir, 'my.sock'));
    expect(explicit.controlSocketDir).toBeUndefined();
  });

  it('the config file: $TWOWAY_CONFIG, else $XDG_CONFIG_HOME/twoway/client.toml, else ~/.config/twoway/client.toml', () => {
    expect(defaultClientConfigFile({ TWOWAY_CONFIG: '/x/c.toml', XDG_CONFIG_HOME: '/y' }, '/home/a')).toBe('/x/c.toml');
    expect(defaultClientConfigFile({ XDG_CONFIG_HOME: '/y' }, '/home/a')).toBe('/y/twoway/client.toml');
    expect(defaultClientConfigFile({ HOME: '/home/b' }, '/home/a')).toBe('/home/b/.config/twoway/client.toml');
    expect(defaultClientConfigFile({ XDG_CONFIG_HOME: 'not/absolute', TWOWAY_CONFIG: '' }, '/home/a')).toBe('/home/a/.config/twoway/client.toml');
  });
});
