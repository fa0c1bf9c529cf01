import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_DEVICE_RULES_PER_PEER, formatPeers, isDeviceRule, loadPeers, parseReverseEntry, savePeers, type PeerEntry } from '../../../src/config/peers.js';
import { randomKey, thrown, useTempDir, write } from '../../helpers/config-fixture.js';

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

  it("compiles each peer's allow rules once, at load, without showing them as a field", () => {
    const p = loadPeers(
      write(tempDir(), 'peers.toml', peer('alice', A, '') + peer('bob', B, '').replace('["10.0.0.0/8:22"]', '["db.corp.example:5432", "[fd00::/8]:22"]')),
    );
    const [alice, bob] = p.peers;
    expect(alice!.rules.texts).toEqual(['10.0.0.0/8:22']);
    expect(alice!.rules.allowsResolved('10.1.2.3', '10.1.2.3', 22)).toBe(true);
    expect(alice!.rules.allowsResolved('10.1.2.3', '10.1.2.3', 23)).toBe(false);
    expect(bob!.rules.namePermitted('db.corp.example', 5432)).toBe(true);
    expect(bob!.rules.allowsResolved('fd00::1', 'fd00::1', 22)).toBe(true);
    expect(Object.keys(alice!)).not.toContain('rules');
    expect(JSON.stringify(alice)).not.toContain('rules');
  });

  it('compiles devices and parses reverse entries once, at load, without showing them as fields', () => {
    const p = loadPeers(
      write(
        tempDir(),
        'peers.toml',
        peer('alice', A, 'devices = ["build1:ssh", "*:web"]') + peer('build1', B, 'kind = "device"\nreverse = ["ssh=127.0.0.1:2222", "web=[::1]:8080"]'),
      ),
    );
    const [alice, build1] = p.peers;
    expect([alice!.deviceRules.allows('build1', 'ssh'), alice!.deviceRules.allows('other', 'web'), alice!.deviceRules.allows('build1', 'db')]).toEqual([
      true,
      true,
      false,
    ]);
    expect(build1!.reverseListeners).toEqual([
      { service: 'ssh', host: '127.0.0.1', port: 2222 },
      { service: 'web', host: '::1', port: 8080 },
    ]);
    expect(Object.isFrozen(build1!.reverseListeners[0])).toBe(true);
    expect(Object.keys(build1!)).not.toContain('reverseListeners');
    expect(JSON.stringify(alice)).not.toContain('deviceRules');
  });

  it('refuses a bad rule naming the file, the peer and the rule', () => {
    const file = write(tempDir(), 'peers.toml', peer('alice', A, '') + peer('carol', B, '').replace('["10.0.0.0/8:22"]', '["10.0.0.1:22", "10.0.0.0/33:22"]'));
    const err = thrown(() => loadPeers(file));
    expect(err).toMatchObject({ code: 'ERR_CONFIG' });
    expect(err.message).toMatch(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: \\[peer\\.2\\] \\(carol\\): allow: rule "10\\.0\\.0\\.0/33:22": `),
    );
  });

  it('accepts an empty file (no peers)', () => {
    expect(loadPeers(write(tempDir(), 'peers.toml', '# nobody yet\n')).peers).toEqual([]);
  });

  const cases: [string, string, RegExp][] = [
    ['a duplicate name', peer('alice', A) + peer('alice', B), /peers\.toml: \[peer\.2\]\.name: duplicate peer name "alice" \(also \[peer\.1\]\)$/],
    ['a duplicate key', peer('alice', A) + peer('bob', A), /peers\.toml: \[peer\.2\]\.public_key: duplicate public key \(already used by peer "alice"\)$/],
    ['a bad name', peer('al ice', A), /\[peer\.1\]\.name: expected 1-64 characters of \[A-Za-z0-9._-\]/],
    ['a bad kind', peer('alice', A, 'kind = "robot"'), /\[peer\.1\]\.kind: expected "user" or "device", got "robot"/],
    [
      'an empty rule',
      peer('alice', A, '').replace('["10.0.0.0/8:22"]', '["10.0.0.0/8:22", ""]'),
      /\[peer\.1\]\.allow\[1\]: expected a non-empty string, got ""/,
    ],
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
  const peers = (dir: string): PeerEntry[] => [
    {
      name: 'alice',
      publicKey: A,
      pskFile: path.join(dir, 'psk/alice.psk'),
      allow: ['10.0.0.0/8:22', '[fd00::/8]:*'],
      kind: 'user',
      devices: ['build1:ssh', '*:*'],
      reverse: [],
    },
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

describe('peers devices and reverse entries', () => {
  const tempDir = useTempDir();
  const device = (extra: string): string => peer('build1', B, `kind = "device"\n${extra}`);

  it('accepts DEVICE:SERVICE with * for either part', () => {
    const rules = ['build1:ssh', 'build1:*', '*:ssh', '*:*', 'lab.build-1_x:web-2'];
    const p = loadPeers(write(tempDir(), 'peers.toml', peer('alice', A, `devices = ${JSON.stringify(rules)}`)));
    expect(p.peers[0]?.devices).toEqual(rules);
    expect(isDeviceRule('build1:ssh')).toBe(true);
    expect(isDeviceRule('*:*')).toBe(true);
  });

  it.each(['', 'build1', ':ssh', 'build1:', 'build1:22', 'build1:1ssh', 'build1:s.sh', 'a:b:c', 'bad name:ssh', '**:ssh', 'build1:ss*'])(
    'refuses the devices entry %j',
    (rule) => {
      expect(isDeviceRule(rule)).toBe(false);
      const err = thrown(() => loadPeers(write(tempDir(), 'peers.toml', peer('alice', A, `devices = [${JSON.stringify(rule)}]`))));
      expect(err.code).toBe('ERR_CONFIG');
      expect(err.message).toMatch(
        rule === '' ? /devices\[0\]: expected a non-empty string/ : /\[peer\.1\]\.devices\[0\]: expected "DEVICE:SERVICE" \(either may be "\*"\)/,
      );
    },
  );

  it('parses SERVICE=HOST:PORT with the listen syntax, IPv6 bracketed', () => {
    expect(parseReverseEntry('ssh=127.0.0.1:2222')).toEqual({ service: 'ssh', host: '127.0.0.1', port: 2222 });
    expect(parseReverseEntry('web=[::1]:8080')).toEqual({ service: 'web', host: '::1', port: 8080 });
    expect(parseReverseEntry('db=localhost:5432')).toEqual({ service: 'db', host: 'localhost', port: 5432 });
    const p = loadPeers(write(tempDir(), 'peers.toml', device('reverse = ["ssh=127.0.0.1:2222", "web=[::1]:8080", "ssh=0.0.0.0:2223"]')));
    expect(p.peers[0]?.reverse).toEqual(['ssh=127.0.0.1:2222', 'web=[::1]:8080', 'ssh=0.0.0.0:2223']);
  });

  it.each([
    'ssh',
    '=127.0.0.1:22',
    'ssh=127.0.0.1',
    'ssh=127.0.0.1:0',
    'ssh=127.0.0.1:70000',
    'ssh=::1:22',
    'ssh=[::1:22',
    '1ssh=127.0.0.1:22',
    's.sh=127.0.0.1:22',
    'ssh=127.0.0.1:22=x',
  ])('refuses the reverse entry %j', (entry) => {
    expect(parseReverseEntry(entry)).toBeUndefined();
    const err = thrown(() => loadPeers(write(tempDir(), 'peers.toml', device(`reverse = [${JSON.stringify(entry)}]`))));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toMatch(/\[peer\.1\]\.reverse\[0\]: expected "SERVICE=HOST:PORT" \(a port above 0\)/);
  });

  it('refuses one address listed twice by a device, and more entries than the bound', () => {
    const twice = thrown(() => loadPeers(write(tempDir(), 'peers.toml', device('reverse = ["ssh=127.0.0.1:2222", "web=127.0.0.1:2222"]'))));
    expect(twice.message).toMatch(/reverse\[1\]: 127\.0\.0\.1:2222 is listed twice/);
    const many = Array.from({ length: MAX_DEVICE_RULES_PER_PEER + 1 }, (_, i) => `d${i}:ssh`);
    const tooMany = thrown(() => loadPeers(write(tempDir(), 'peers.toml', peer('alice', A, `devices = ${JSON.stringify(many)}`))));
    expect(tooMany.message).toMatch(new RegExp(`devices: at most ${MAX_DEVICE_RULES_PER_PEER} entries, got ${MAX_DEVICE_RULES_PER_PEER + 1}`));
  });

  it('formatPeers writes devices and reverse only when set, and the text loads back the same', () => {
    const dir = tempDir();
    const file = path.join(dir, 'peers.toml');
    const list: PeerEntry[] = [
      { name: 'alice', publicKey: A, allow: [], kind: 'user', devices: ['build1:*', '*:ssh'], reverse: [] },
      { name: 'build1', publicKey: B, allow: [], kind: 'device', devices: [], reverse: ['ssh=127.0.0.1:2222', 'web=[::1]:8080'] },
      { name: 'carol', publicKey: randomKey(), allow: ['10.0.0.0/8:22'], kind: 'user', devices: [], reverse: [] },
    ];
    const text = formatPeers(file, list);
    expect(text).toContain('devices = [ "build1:*", "*:ssh" ]');
    expect(text).toContain('reverse = [ "ssh=127.0.0.1:2222", "web=[::1]:8080" ]');
    expect(text.match(/^devices =/gm)).toHaveLength(1);
    expect(text.match(/^reverse =/gm)).toHaveLength(1);
    fs.writeFileSync(file, text);
    expect(loadPeers(file).peers).toEqual(list);
    expect(savePeers(file, list).peers).toEqual(list);
  });
});
