/** The device-endpoint keys of peers.toml (`devices`, `reverse`) and client.toml (`[[device]]`, `[[service]]`). */
import { describe, expect, it } from 'vitest';
import { loadClientConfig } from '../../../src/config/client-config.js';
import { loadPeers, savePeers } from '../../../src/config/peers.js';
import { randomKey, thrown, useTempDir, write } from '../../helpers/config-fixture.js';

const A = randomKey();
const B = randomKey();
const peer = (name: string, key: string, extra = ''): string => `[[peer]]\nname = "${name}"\npublic_key = "${key}"\nallow = []\n${extra}\n`;
const client = (extra: string): string =>
  `[client]\nserver_url = "wss://vpn.example.com/twoway"\nserver_public_key = "${A}"\nprivate_key_file = "client.key"\n${extra}`;

describe('peers.toml devices and reverse', () => {
  const tempDir = useTempDir();

  it('reads them, canonicalises reverse addresses and round-trips through savePeers', () => {
    const dir = tempDir();
    const file = write(
      dir,
      'peers.toml',
      peer('alice', A, 'devices = ["build1:ssh", "*:postgres", "build2:*"]') +
        peer('build1', B, 'kind = "device"\nreverse = ["ssh=127.0.0.1:2222", "web=[::1]:8080"]'),
    );
    const p = loadPeers(file);
    expect(p.peers[0]?.devices).toEqual(['build1:ssh', '*:postgres', 'build2:*']);
    expect(p.peers[1]?.reverse).toEqual(['ssh=127.0.0.1:2222', 'web=[::1]:8080']);
    const saved = savePeers(file, p.peers);
    expect(saved.peers).toEqual(p.peers);
    expect(loadPeers(file).peers).toEqual(p.peers);
  });

  const cases: [string, string, RegExp][] = [
    ['a device rule without a service', peer('alice', A, 'devices = ["build1"]'), /\[peer\.1\]\.devices\[0\]: expected "DEVICE:SERVICE"/],
    ['a device rule with a port', peer('alice', A, 'devices = ["build1:22x:1"]'), /devices\[0\]: expected "DEVICE:SERVICE"/],
    ['a reverse listener on a user', peer('alice', A, 'reverse = ["ssh=127.0.0.1:2222"]'), /reverse: reverse listeners belong to peers of kind = "device"/],
    ['a reverse entry without a service', peer('d', A, 'kind = "device"\nreverse = ["127.0.0.1:2222"]'), /reverse\[0\]: expected "SERVICE=HOST:PORT"/],
    [
      'a reverse entry on port 0',
      peer('d', A, 'kind = "device"\nreverse = ["ssh=127.0.0.1:0"]'),
      /reverse\[0\]: expected "SERVICE=HOST:PORT" \(a port above 0\)/,
    ],
    [
      'one port claimed by two devices',
      peer('d1', A, 'kind = "device"\nreverse = ["ssh=127.0.0.1:2222"]') + peer('d2', B, 'kind = "device"\nreverse = ["web=127.0.0.1:2222"]'),
      /reverse listener 127\.0\.0\.1:2222 is also claimed by peer "d1"/,
    ],
  ];
  it.each(cases)('refuses %s', (_what, text, message) => {
    const err = thrown(() => loadPeers(write(tempDir(), 'peers.toml', text)));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toMatch(message);
  });
});

describe('client.toml [[device]] and [[service]]', () => {
  const tempDir = useTempDir();

  it('reads pins, services and device forwards in both target forms', () => {
    const c = loadClientConfig(
      write(
        tempDir(),
        'c.toml',
        client(
          `[[device]]\nname = "build1"\npublic_key = "${B}"\n` +
            `[[forward]]\nlisten = "127.0.0.1:2223"\ntarget = "build1:ssh"\n` +
            `[[forward]]\nlisten = "127.0.0.1:2224"\ntarget = "ssh.build1.twoway:22"\n` +
            `[[service]]\nname = "ssh"\ntarget = "127.0.0.1:22"\nallow = ["alice=${A}", "${A}", "*"]\nreverse = true\n`,
        ),
      ),
    );
    expect(c.devices).toEqual([{ name: 'build1', publicKey: B }]);
    expect(c.forwards.map((f) => f.target)).toEqual(['build1:ssh', 'build1:ssh']);
    expect(c.services).toEqual([{ name: 'ssh', target: '127.0.0.1:22', allow: [`alice=${A}`, A, '*'], reverse: true }]);
  });

  const cases: [string, string, RegExp][] = [
    [
      'a device forward without a pinned key',
      `[[forward]]\nlisten = "127.0.0.1:2223"\ntarget = "build1:ssh"\n`,
      /\[forward\.1\]\]?\.target: no public key pinned for device build1/,
    ],
    ['a device pinned twice', `[[device]]\nname = "d"\npublic_key = "${B}"\n[[device]]\nname = "d"\npublic_key = "${A}"\n`, /device d is pinned twice/],
    ['a bad device key', `[[device]]\nname = "d"\npublic_key = "nope"\n`, /\[device\.1\]\.public_key: expected a base64 32-byte key/],
    ['a bad service name', `[[service]]\nname = "s.sh"\ntarget = "127.0.0.1:22"\n`, /\[service\.1\]\.name: expected a letter/],
    ['a service without a port', `[[service]]\nname = "ssh"\ntarget = "127.0.0.1"\n`, /\[service\.1\]\.target: expected "host:port"/],
    [
      'a service defined twice',
      `[[service]]\nname = "ssh"\ntarget = "127.0.0.1:22"\n[[service]]\nname = "ssh"\ntarget = "127.0.0.1:23"\n`,
      /service ssh is defined twice/,
    ],
    [
      'a bad allow entry',
      `[[service]]\nname = "ssh"\ntarget = "127.0.0.1:22"\nallow = ["al ice"]\n`,
      /\[service\.1\]\.allow\[0\]: expected a base64 public key, "NAME=KEY" or "\*"/,
    ],
    // Issue 13 item 5: a name alone is whatever key the server says it is.
    [
      'a bare name in allow (with the fix in the message)',
      `[[service]]\nname = "ssh"\ntarget = "127.0.0.1:22"\nallow = ["${A}", "alice"]\n`,
      /\[service\.1\]\.allow\[1\]: allow = \["alice"\]: a bare name lets a compromised server present any key as alice; write "alice=<their public key>"/,
    ],
    [
      'NAME=KEY with a bad key',
      `[[service]]\nname = "ssh"\ntarget = "127.0.0.1:22"\nallow = ["alice=nope"]\n`,
      /allow\[0\]: "NAME=KEY": expected a base64 32-byte public key after "alice="/,
    ],
    [
      'NAME=KEY with a bad name',
      `[[service]]\nname = "ssh"\ntarget = "127.0.0.1:22"\nallow = ["al ice=${A}"]\n`,
      /allow\[0\]: "NAME=KEY": expected a peer name before "="/,
    ],
  ];
  it.each(cases)('refuses %s', (_what, text, message) => {
    const err = thrown(() => loadClientConfig(write(tempDir(), 'c.toml', client(text))));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toMatch(message);
  });
});
