import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VERIFY_VALID_MS, formatPeers, loadPeers } from '../../../src/config/peers.js';
import { loadServerConfig } from '../../../src/config/server-config.js';
import { randomKey, thrown, useTempDir, write } from '../../helpers/config-fixture.js';

const SERVER = `[server]
listen = "127.0.0.1:8443"
private_key_file = "server.key"
peers_file = "peers/peers.toml"
`;
const peer = (extra: string): string => `[[peer]]\nname = "alice"\npublic_key = "${randomKey()}"\nallow = ["10.0.0.0/8:22 verified<15m"]\n${extra}\n`;

describe('[verify] and the peer fields verify, verify_valid_ms, identity', () => {
  const tempDir = useTempDir();

  it('[verify] defaults: totp.json beside the peers file, issuer twoway, 5 attempts, 5 minutes', () => {
    const dir = tempDir();
    const config = loadServerConfig(write(dir, 'server.toml', SERVER));
    expect(config.verify).toEqual({ totpFile: path.join(dir, 'peers', 'totp.json'), totpIssuer: 'twoway', maxAttempts: 5, lockoutMs: 300_000 });
  });

  it('[verify] keys are read and checked', () => {
    const dir = tempDir();
    const config = loadServerConfig(
      write(dir, 'server.toml', `${SERVER}[verify]\ntotp_file = "/var/lib/t.json"\ntotp_issuer = "Corp VPN"\nmax_attempts = 3\nlockout_ms = 60000\n`),
    );
    expect(config.verify).toEqual({ totpFile: '/var/lib/t.json', totpIssuer: 'Corp VPN', maxAttempts: 3, lockoutMs: 60_000 });
    expect(thrown(() => loadServerConfig(write(dir, 'bad.toml', `${SERVER}[verify]\nmax_attempts = 0\n`))).message).toMatch(/\[verify\]\.max_attempts/);
    expect(thrown(() => loadServerConfig(write(dir, 'bad2.toml', `${SERVER}[verify]\ntotp_issuer = "a:b"\n`))).message).toMatch(/totp_issuer/);
    expect(thrown(() => loadServerConfig(write(dir, 'bad3.toml', `${SERVER}[verify]\nmax_attempt = 3\n`))).message).toMatch(/unknown key/);
  });

  it('reads the peer fields and writes back only those set', () => {
    const dir = tempDir();
    const file = write(dir, 'peers.toml', peer('verify = "oidc"\nverify_valid_ms = 3600000\nidentity = "alice@corp.example"'));
    const [alice] = loadPeers(file).peers;
    expect(alice).toMatchObject({ verify: 'oidc', verifyValidMs: 3_600_000, identity: 'alice@corp.example' });
    expect(formatPeers(file, [alice!])).toContain('verify = "oidc"\nverify_valid_ms = 3600000\nidentity = "alice@corp.example"');
    const plain = loadPeers(write(dir, 'plain.toml', peer('verify = "totp"'))).peers[0]!;
    expect(plain.verifyValidMs).toBeUndefined();
    expect(VERIFY_VALID_MS).toBe(28_800_000);
    expect(formatPeers(file, [plain])).not.toMatch(/^verify_valid_ms/m);
  });

  it.each([
    ['verify = "sms"', /verify: expected "totp" or "oidc"/],
    ['verify_valid_ms = 60000', /verify_valid_ms: needs verify/],
    ['verify = "totp"\nidentity = "a@b"', /identity: .*needs verify = "oidc"/],
    ['verify = "totp"\nverify_valid_ms = 10', /verify_valid_ms: expected an integer/],
  ])('refuses %j', (extra, message) => {
    const dir = tempDir();
    expect(thrown(() => loadPeers(write(dir, 'peers.toml', peer(extra)))).message).toMatch(message);
  });
});
