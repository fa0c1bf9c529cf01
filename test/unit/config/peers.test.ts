import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPeers, savePeers, type PeerConfig } from '../../../src/config/peers.js';
import { randomKey, thrown, useTempDir, write } from './fixture.js';

const A = randomKey();
const B = randomKey();
const peer = (name: string, key: string, extra = ''): string => `[[peer]]\nname = "${name}"\npublic_key = "${key}"\nallow = ["10.0.0.0/8:22"]\n${extra}\n`;

describe('loadPeers', () => {
  const tempDir = useTempDir();

  it('reads peers with defaults and resolved psk paths', () => {
    const dir = tempDir();
    const p = loadPeers(write(dir, 'peers.toml', peer('alice', A, 'psk_file = "psk/a.psk"') + peer('dev-1', B, 'kind = "device"')));
    expect(p.peers).toEqual([
      { name: 'alice', publicKey: A, pskFile: path.join(dir, 'psk/a.psk'), allow: ['10.0.0.0/8:22'], kind: 'user', devices: [], reverse: [] },
      { name: 'dev-1', publicKey: B, allow: ['10.0.0.0/8:22'], kind: 'device', devices: [], reverse: [] },
    ]);
    expect(Object.isFrozen(p.peers[0]?.allow)).toBe(true);
  });

  it('accepts an empty file (no peers)', () => {
    expect(loadPeers(write(tempDir(), 'peers.toml', '# nobody yet\n')).peers).toEqual([]);
  });

  const cases: [string, string, RegExp][] = [
    ['a duplicate name', peer('alice', A) + peer('alice', B), /peers\.toml: \[peer\.2\]\.name: duplicate peer name "alice" \(also \[peer\.1\]\)$/],
    ['a duplicate key', peer('alice', A) + peer('bob', A), /peers\.toml: \[peer\.2\]\.public_key: duplicate public key \(already used by peer "alice"\)$/],
    ['a bad name', peer('al ice', A), /\[peer\.1\]\.name: expected 1-64 characters of \[A-Za-z0-9._-\]/],
    ['a bad kind', peer('alice', A, 'kind = "robot"'), /\[peer\.1\]\.kind: expected "user" or "device", got "robot"/],
    ['an empty rule', peer('alice', A, '').replace('["10.0.0.0/8:22"]', '["10.0.0.0/8:22", ""]'), /\[peer\.1\]\.allow\[1\]: expected a non-empty string, got ""/],
    ['an unknown key', peer('alice', A, 'allowed = []'), /\[peer\.1\]\.allowed: unknown key/],
    ['a [peer] table instead of [[peer]]', `[peer]\nname = "a"\n`, /peers\.toml: peer: expected one or more \[\[peer\]\] tables, got a table/],
  ];
  it.each(cases)('refuses %s', (_what, text, message) => {
    const err = thrown(() => loadPeers(write(tempDir(), 'peers.toml', text)));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toMatch(message);
  });

  it('refuses a bad base64 key without echoing it', () => {
    const bad = `${A.slice(0, 40)}!!!=`;
    const err = thrown(() => loadPeers(write(tempDir(), 'peers.toml', peer('alice', bad))));
    expect(err.message).toMatch(/\[peer\.1\]\.public_key: expected a base64 32-byte key, got 44 characters that are not one \(value not shown\)/);
    expect(err.message).not.toContain(bad.slice(0, 10));
  });
});

describe('savePeers', () => {
  const tempDir = useTempDir();
  const peers = (dir: string): PeerConfig[] => [
    { name: 'alice', publicKey: A, pskFile: path.join(dir, 'psk/alice.psk'), allow: ['10.0.0.0/8:22', '[fd00::/8]:*'], kind: 'user', devices: ['build1:ssh', '*:*'], reverse: [] },
    { name: 'dev', publicKey: B, pskFile: '/elsewhere/dev.psk', allow: [], kind: 'device', devices: [], reverse: ['ssh=127.0.0.1:2222', 'web=[::1]:8080'] },
  ];

  it('round-trips through loadPeers, writing psk paths relative when inside the folder', () => {
    const dir = tempDir();
    const file = path.join(dir, 'peers.toml');
    const saved = savePeers(file, peers(dir));
    expect(loadPeers(file)).toEqual(saved);
    expect(saved.peers).toEqual(peers(dir));
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain('psk_file = "psk/alice.psk"');
    expect(text).toContain('psk_file = "/elsewhere/dev.psk"');
    expect(text).toMatch(/does not keep comments/);
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    savePeers(file, []);
    expect(loadPeers(file).peers).toEqual([]);
  });

  it('replaces the file by rename: a reader of the old file keeps the old content, no temp file remains', () => {
    const dir = tempDir();
    const file = path.join(dir, 'peers.toml');
    savePeers(file, peers(dir).slice(0, 1));
    const before = fs.readFileSync(file, 'utf8');
    const oldInode = fs.statSync(file).ino;
    fs.linkSync(file, path.join(dir, 'old-link'));
    savePeers(file, peers(dir));
    expect(fs.statSync(file).ino).not.toBe(oldInode);
    expect(fs.readFileSync(path.join(dir, 'old-link'), 'utf8')).toBe(before);
    expect(loadPeers(file).peers).toHaveLength(2);
    expect(fs.readdirSync(dir).sort()).toEqual(['old-link', 'peers.toml']);
  });

  it('leaves the old file untouched and no temp file when the rename fails', () => {
    const dir = tempDir();
    const file = path.join(dir, 'peers.toml');
    fs.mkdirSync(file); // a directory where the file should go: rename(2) fails with EISDIR
    fs.writeFileSync(path.join(file, 'keep'), 'x');
    const err = thrown(() => savePeers(file, peers(dir)));
    expect(err.code).toBe('ERR_CONFIG_FILE');
    expect(fs.readdirSync(dir)).toEqual(['peers.toml']);
    expect(fs.readFileSync(path.join(file, 'keep'), 'utf8')).toBe('x');
  });

  it('validates before writing: a duplicate is refused and the file is unchanged', () => {
    const dir = tempDir();
    const file = path.join(dir, 'peers.toml');
    savePeers(file, peers(dir));
    const before = fs.readFileSync(file, 'utf8');
    const p = peers(dir);
    const err = thrown(() => savePeers(file, [...p, { ...p[0]!, publicKey: randomKey() }]));
    expect(err.message).toMatch(/duplicate peer name "alice"/);
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
    expect(fs.readdirSync(dir)).toEqual(['peers.toml']);
  });
});
