import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../../src/config/check-config.js';
import { randomKey, thrown, useTempDir, write, writeKey } from '../../helpers/config-fixture.js';

function serverSetup(dir: string, serverExtra = '', peerExtra = ''): string {
  write(dir, 'peers.toml', `[[peer]]\nname = "alice"\npublic_key = "${randomKey()}"\nallow = ["10.0.0.1:22"]\n${peerExtra}\n`);
  return write(
    dir,
    'server.toml',
    `[server]\nlisten = "127.0.0.1:0"\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\ncontrol_socket = "s.sock"\n${serverExtra}\n`,
  );
}

describe('checkConfig', () => {
  const tempDir = useTempDir();

  it('tells the three kinds apart and checks the files they name', () => {
    const dir = tempDir();
    writeKey(dir, 'server.key');
    writeKey(dir, 'alice.psk');
    const server = serverSetup(dir, '', 'psk_file = "alice.psk"');
    const r = checkConfig(server);
    expect(r.kind).toBe('server');
    expect(r.filesChecked).toEqual([server, path.join(dir, 'server.key'), path.join(dir, 'peers.toml'), path.join(dir, 'alice.psk')]);
    expect(checkConfig(path.join(dir, 'peers.toml')).kind).toBe('peers');
  });

  it('refuses a server whose private key file is missing', () => {
    const dir = tempDir();
    const err = thrown(() => checkConfig(serverSetup(dir)));
    expect(err.code).toBe('ERR_KEY_FILE');
    expect(err.message).toBe(`private key file ${path.join(dir, 'server.key')} does not exist`);
  });

  it('refuses a peer psk file with mode 0644, with the chmod hint and no secret', () => {
    const dir = tempDir();
    writeKey(dir, 'server.key');
    const [psk, secret] = writeKey(dir, 'alice.psk', 0o644);
    const err = thrown(() => checkConfig(serverSetup(dir, '', 'psk_file = "alice.psk"')));
    expect(err.code).toBe('ERR_KEY_FILE_MODE');
    expect(err.message).toContain(`chmod 600 ${psk}`);
    expect(err.message).not.toContain(secret);
  });

  it('refuses a peer without psk when require_psk is set', () => {
    const dir = tempDir();
    writeKey(dir, 'server.key');
    const err = thrown(() => checkConfig(serverSetup(dir, 'require_psk = true')));
    expect(err.message).toMatch(/peers\.toml: \[peer\.1\] \(alice\): require_psk is set but the peer has no psk_file$/);
  });

  it('checks TLS files: the key must be private', () => {
    const dir = tempDir();
    writeKey(dir, 'server.key');
    write(dir, 'cert.pem', 'CERT');
    write(dir, 'tls.key', 'KEY');
    fs.chmodSync(path.join(dir, 'tls.key'), 0o640);
    const err = thrown(() => checkConfig(serverSetup(dir, 'tls_cert_file = "cert.pem"\ntls_key_file = "tls.key"')));
    expect(err.code).toBe('ERR_KEY_FILE_MODE');
    expect(err.message).toContain('TLS private key file');
  });

  it('checks a client private key and psk', () => {
    const dir = tempDir();
    const [, clientKey] = writeKey(dir, 'c.key');
    const file = write(
      dir,
      'client.toml',
      `[client]\nserver_url = "ws://127.0.0.1:1/t"\nserver_public_key = "${randomKey()}"\nprivate_key_file = "c.key"\npsk_file = "c.psk"\n`,
    );
    const err = thrown(() => checkConfig(file));
    expect(err.message).toBe(`psk file ${path.join(dir, 'c.psk')} does not exist`);
    writeKey(dir, 'c.psk');
    const ok = checkConfig(file);
    expect(ok.kind).toBe('client');
    expect(JSON.stringify(ok)).not.toContain(clientKey);
  });

  it('refuses a file of no known kind, or of two kinds', () => {
    const dir = tempDir();
    expect(thrown(() => checkConfig(write(dir, 'x.toml', 'a = 1\n'))).message).toMatch(/cannot tell what this file is/);
    expect(thrown(() => checkConfig(write(dir, 'y.toml', '[server]\n[client]\n'))).message).toMatch(/mixes \[server\] and \[client\]/);
  });
});
