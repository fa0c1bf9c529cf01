import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../../src/config/server-config.js';
import { thrown, useTempDir, write } from '../../helpers/config-fixture.js';

const MINIMAL = `[server]
listen = "[::]:8443"
private_key_file = "server.key"
peers_file = "/etc/twoway/peers.toml"
`;

describe('loadServerConfig', () => {
  const tempDir = useTempDir();

  it('fills defaults, resolves relative paths against the file and freezes deeply', () => {
    const dir = tempDir();
    const config = loadServerConfig(write(dir, 'server.toml', MINIMAL));
    expect(config.listen).toEqual({ host: '::', port: 8443 });
    expect(config.path).toBe('/twoway');
    expect(config.privateKeyFile).toBe(path.join(dir, 'server.key'));
    expect(config.peersFile).toBe('/etc/twoway/peers.toml');
    expect(config.requirePsk).toBe(false);
    expect(config.controlSocket).toBe('/run/twoway/server.sock');
    expect(config.shutdownGraceMs).toBe(10_000);
    expect(config.limits.deadAfterMs).toBe(30_000);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.listen)).toBe(true);
    expect(() => {
      (config.limits as { deadAfterMs: number }).deadAfterMs = 1;
    }).toThrow(TypeError);
  });

  it('public_url and invites_file: the invitations file defaults to invites.json beside the peers file', () => {
    const dir = tempDir();
    const plain = loadServerConfig(write(dir, 'p.toml', MINIMAL));
    expect(plain.invitesFile).toBe('/etc/twoway/invites.json');
    expect(plain.publicUrl).toBeUndefined();
    const set = loadServerConfig(
      write(dir, 's.toml', MINIMAL.replace('[server]', '[server]\npublic_url = "wss://vpn.corp.example/twoway"\ninvites_file = "inv/open.json"')),
    );
    expect(set.publicUrl).toBe('wss://vpn.corp.example/twoway');
    expect(set.invitesFile).toBe('/etc/twoway/inv/open.json');
    for (const bad of ['https://vpn.corp.example/', 'vpn.corp.example:8443', 'wss://u:p@vpn/']) {
      const err = thrown(() => loadServerConfig(write(dir, 'b.toml', MINIMAL.replace('[server]', `[server]\npublic_url = "${bad}"`))));
      expect(err.message).toMatch(/public_url: expected the URL clients dial/);
    }
  });

  it('reads the per-key limits; max_streams_per_key follows max_streams_per_session unless set', () => {
    const dir = tempDir();
    const defaults = loadServerConfig(write(dir, 'd.toml', MINIMAL)).limits;
    expect([defaults.maxSessionsPerKey, defaults.maxStreamsPerKey]).toEqual([8, 256]);
    const raised = loadServerConfig(write(dir, 'r.toml', `${MINIMAL}[limits]\nmax_streams_per_session = 1024\n`)).limits;
    expect(raised.maxStreamsPerKey).toBe(1024);
    const set = loadServerConfig(write(dir, 's.toml', `${MINIMAL}[limits]\nmax_sessions_per_key = 2\nmax_streams_per_key = 100\n`)).limits;
    expect([set.maxSessionsPerKey, set.maxStreamsPerKey]).toEqual([2, 100]);
  });

  it('reads tls, metrics and limits', () => {
    const dir = tempDir();
    const config = loadServerConfig(
      write(
        dir,
        's.toml',
        `${MINIMAL}tls_cert_file = "c.pem"\ntls_key_file = "/k.pem"\nmetrics_listen = "127.0.0.1:9400"\n[limits]\nmax_streams_per_session = 8\n`,
      ),
    );
    expect(config.tls).toEqual({ certFile: path.join(dir, 'c.pem'), keyFile: '/k.pem' });
    expect(config.metricsListen).toEqual({ host: '127.0.0.1', port: 9400 });
    expect(config.limits.maxStreamsPerSession).toBe(8);
    expect(config.limits.streamOpenBurst).toBe(50);
  });

  it('reads trusted proxies and the per-key handshake limits', () => {
    const dir = tempDir();
    const config = loadServerConfig(
      write(
        dir,
        's.toml',
        `${MINIMAL}trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]\nproxy_protocol = true\n[limits]\nhandshake_rate_per_key = 3\n`,
      ),
    );
    expect(config.trustedProxies).toEqual(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);
    // Compiled once, here: the daemon takes this set as it is.
    expect([config.proxySet?.trusts('10.9.8.7'), config.proxySet?.trusts('fd00::1'), config.proxySet?.trusts('192.0.2.1')]).toEqual([true, true, false]);
    expect(config.proxyProtocol).toBe(true);
    expect(config.limits.handshakeRatePerKey).toBe(3);
    expect(config.limits.handshakeBurstPerKey).toBe(20);
    expect(loadServerConfig(write(dir, 't.toml', MINIMAL))).toMatchObject({ trustedProxies: [], proxyProtocol: false });
    expect(loadServerConfig(write(dir, 't.toml', MINIMAL)).proxySet).toBeUndefined();
  });

  const cases: [string, string, string | RegExp][] = [
    ['an unknown key', MINIMAL.replace('listen', 'lisen = "x"\nlisten'), 's.toml: [server].lisen: unknown key (did you mean listen?)'],
    ['an unknown table', `${MINIMAL}[limit]\nx = 1\n`, 's.toml: limit: unknown key (did you mean limits?)'],
    ['an unknown limit', `${MINIMAL}[limits]\nrekey_ms = 1\n`, 's.toml: [limits].rekey_ms: unknown key'],
    ['a bad listen', MINIMAL.replace('"[::]:8443"', '"abc"'), 's.toml: [server].listen: expected "host:port" (IPv6 as "[::1]:port"), got "abc"'],
    ['an unbracketed IPv6 listen', MINIMAL.replace('"[::]:8443"', '":::8443"'), /\[server\]\.listen: expected "host:port"/],
    ['a port out of range', MINIMAL.replace('8443', '65536'), /\[server\]\.listen: expected "host:port"/],
    ['a missing key', MINIMAL.replace('peers_file', '# peers_file'), 's.toml: [server].peers_file: required key is missing'],
    ['a missing [server]', 'x = 1\n', 's.toml: server: required table [server] is missing'],
    ['a wrong type', `${MINIMAL}require_psk = "yes"\n`, 's.toml: [server].require_psk: expected true or false, got "yes"'],
    ['a float duration', `${MINIMAL}shutdown_grace_ms = 1.5\n`, /\[server\]\.shutdown_grace_ms: expected an integer in 0\.\.600000, got 1\.5/],
    ['tls cert without key', `${MINIMAL}tls_cert_file = "c.pem"\n`, /\[server\]\.tls_key_file: tls_cert_file and tls_key_file go together/],
    ['a bad path', `${MINIMAL}path = "twoway"\n`, /\[server\]\.path: expected an absolute URL path/],
    [
      'dead_after below keepalive',
      `${MINIMAL}[limits]\ndead_after_ms = 5000\n`,
      's.toml: [limits].dead_after_ms: must exceed keepalive_interval_ms (10000), got 5000',
    ],
    [
      'a window below one chunk',
      `${MINIMAL}[limits]\ninitial_window_bytes = 100\n`,
      /\[limits\]\.initial_window_bytes: expected an integer in 16384\.\.16777216/,
    ],
    // Above the mux's largest window: accepted here once, then refused by every session's mux.
    [
      "a window above the mux's largest",
      `${MINIMAL}[limits]\ninitial_window_bytes = 33554432\n`,
      's.toml: [limits].initial_window_bytes: expected an integer in 16384..16777216, got 33554432',
    ],
    [
      'more streams than the mux allows',
      `${MINIMAL}[limits]\nmax_streams_per_session = 100000\n`,
      's.toml: [limits].max_streams_per_session: expected an integer in 1..65536, got 100000',
    ],
    ['invalid TOML', `${MINIMAL}x = = 1\n`, /^s\.toml:5:5: invalid TOML: /],
    [
      'a trusted proxy that is not an address',
      `${MINIMAL}trusted_proxies = ["proxy.corp"]\n`,
      /\[server\]\.trusted_proxies\[0\]: expected an IP address or CIDR range, got "proxy\.corp"/,
    ],
    ['proxy_protocol without trusted proxies', `${MINIMAL}proxy_protocol = true\n`, /\[server\]\.proxy_protocol: needs trusted_proxies/],
    [
      'proxy_protocol with tls',
      `${MINIMAL}trusted_proxies = ["10.0.0.1"]\nproxy_protocol = true\ntls_cert_file = "c"\ntls_key_file = "k"\n`,
      /\[server\]\.proxy_protocol: is supported for plain ws:\/\/ only/,
    ],
  ];
  it.each(cases)('refuses %s, naming the file and key', (_what, text, message) => {
    const dir = tempDir();
    const file = write(dir, 's.toml', text);
    const err = thrown(() => loadServerConfig(path.relative(process.cwd(), file)));
    const expected = typeof message === 'string' ? message.replace(/^s\.toml/, path.relative(process.cwd(), file)) : message;
    if (typeof expected === 'string') expect(err.message).toBe(expected);
    else expect(err.message.replace(path.relative(process.cwd(), dir) + '/', '')).toMatch(expected);
    expect(err.code).toMatch(/^ERR_CONFIG/);
  });

  it('does not echo the lines around a TOML syntax error', () => {
    const dir = tempDir();
    const err = thrown(() => loadServerConfig(write(dir, 's.toml', `${MINIMAL}note = "hunter2-secret\n`)));
    expect(err.code).toBe('ERR_CONFIG_FILE');
    expect(err.message).not.toContain('hunter2');
  });

  it('refuses a missing file with ERR_CONFIG_FILE', () => {
    const err = thrown(() => loadServerConfig('/nonexistent/twoway/server.toml'));
    expect(err.code).toBe('ERR_CONFIG_FILE');
    expect(err.message).toBe('/nonexistent/twoway/server.toml: does not exist');
  });
});
