import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../../src/config/check-config.js';
import { loadClientConfig } from '../../../src/config/client-config.js';
import { loadPeers } from '../../../src/config/peers.js';
import { loadServerConfig } from '../../../src/config/server-config.js';
import { useTempDir, writeKey } from '../../helpers/config-fixture.js';

const CONFIGS = path.resolve(import.meta.dirname, '../../../configs');

/** Copies an example into `dir` (as `as`), pointing its /etc/twoway/ paths there. */
function install(dir: string, name: string, as = name): string {
  const text = fs.readFileSync(path.join(CONFIGS, name), 'utf8').replaceAll('/etc/twoway/', `${dir}/`).replaceAll('/run/twoway/', `${dir}/`);
  const file = path.join(dir, as);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

describe('example configs', () => {
  const tempDir = useTempDir();

  it('configs/server.toml with configs/peers.toml passes checkConfig', () => {
    const dir = tempDir();
    const server = install(dir, 'server.toml');
    install(dir, 'peers.toml', 'peers/peers.toml');
    writeKey(dir, 'server.key');
    writeKey(dir, 'peers/alice.psk');
    const result = checkConfig(server);
    expect(result.kind).toBe('server');
    if (result.kind !== 'server') return;
    expect(result.config.listen).toEqual({ host: '0.0.0.0', port: 8443 });
    expect(result.config.path).toBe('/twoway');
    expect(result.config.peersFile).toBe(path.join(dir, 'peers', 'peers.toml'));
    expect(result.config.limits.initialWindowBytes).toBe(262144);
    expect(result.config.tls).toBeUndefined();
    expect(result.peers.peers.map((p) => p.name)).toEqual(['alice', 'build-runner', 'build1']);
    expect(result.filesChecked).toContain(path.join(dir, 'peers/alice.psk'));
    expect(Object.isFrozen(result.config.limits)).toBe(true);
  });

  it('configs/client.toml loads and passes checkConfig', () => {
    const dir = tempDir();
    const client = install(dir, 'client.toml');
    writeKey(dir, 'client.key');
    const config = loadClientConfig(client, { env: {} });
    expect(config.serverUrls).toEqual(['wss://vpn.example.com/twoway']);
    expect(config.forwards).toEqual([
      { listen: { host: '127.0.0.1', port: 2222 }, access: { allowOtherUsers: false, allowUids: [] }, target: 'db.corp.example:22' },
    ]);
    expect(config.socks).toEqual([{ listen: { host: '127.0.0.1', port: 1080 }, access: { allowOtherUsers: false, allowUids: [] } }]);
    expect(config.proxy).toBeUndefined();
    expect(checkConfig(client).kind).toBe('client');
  });

  it('configs/peers.toml loads on its own', () => {
    const dir = tempDir();
    const peers = loadPeers(install(dir, 'peers.toml'));
    expect(peers.peers[0]).toEqual({
      name: 'alice',
      publicKey: 'GrBbZAPzzvnoNJzJLHDtu0lpSl3YSZd0gMx6ZBC1j1Y=',
      pskFile: path.join(dir, 'alice.psk'),
      allow: ['10.0.0.0/8:22', 'db.corp.example:5432'],
      kind: 'user',
      devices: ['build1:ssh', 'build1:postgres'],
      reverse: [],
    });
    expect(peers.peers[2]).toMatchObject({ name: 'build1', kind: 'device', reverse: ['ssh=127.0.0.1:2222'] });
    expect(peers.peers[1]?.kind).toBe('user');
    expect(peers.peers[1]?.pskFile).toBeUndefined();
  });

  it('the examples as shipped load (paths unchecked) and the key files are what checkConfig misses', () => {
    expect(loadServerConfig(path.join(CONFIGS, 'server.toml')).privateKeyFile).toBe('/etc/twoway/server.key');
    const client = loadClientConfig(path.join(CONFIGS, 'client.toml'), { env: {} });
    expect(client.privateKeyFile).toBe(path.join(CONFIGS, 'client.key'));
    expect(client.controlSocket).toBeUndefined();
    expect(loadClientConfig(path.join(CONFIGS, 'client.toml'), { env: { XDG_RUNTIME_DIR: '/run/user/1000' } }).controlSocket).toBe(
      '/run/user/1000/twoway/client.sock',
    );
    expect(() => checkConfig(path.join(CONFIGS, 'client.toml'))).toThrow(/private key file .*configs\/client.key does not exist/);
  });
});
