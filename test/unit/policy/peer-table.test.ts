/** The server's runtime allowlist (moved from the deleted twin src/policy/allowlist.ts's test). */
import { describe, expect, it } from 'vitest';
import { compileRules } from '../../../src/policy/access-rules.js';
import { DeviceRules } from '../../../src/policy/device-rules.js';
import { ServerPeers, type ServerPeer } from '../../../src/policy/peer-table.js';

const key = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const peer = (name: string, n: number, kind: 'user' | 'device' = 'user', publicKey = key(n)): ServerPeer => ({
  name,
  publicKey,
  kind,
  rules: compileRules(['10.0.0.0/8:22']),
  devices: new DeviceRules([]),
  reverse: [],
});

describe('ServerPeers', () => {
  it('looks peers up by public key, and devices by name', () => {
    const peers = new ServerPeers([peer('alice', 1), peer('printer', 2, 'device')]);
    expect(peers.size).toBe(2);
    expect(peers.lookup(key(1))?.name).toBe('alice');
    expect(peers.lookup(key(2))?.kind).toBe('device');
    expect(peers.lookup(key(3))).toBeUndefined();
    expect(peers.lookup(new Uint8Array(31))).toBeUndefined();
    expect(peers.lookup(new Uint8Array(33))).toBeUndefined();
    expect(peers.device('printer')?.publicKey).toEqual(key(2));
    expect(peers.device('alice')).toBeUndefined();
    expect(peers.names().sort()).toEqual(['alice', 'printer']);
    // A key inside a larger buffer (a subarray) finds the same peer.
    const big = new Uint8Array(40);
    big.set(key(1), 4);
    expect(peers.lookup(big.subarray(4, 36))?.name).toBe('alice');
  });

  it('is not changed by a caller reusing its key buffer', () => {
    const pk = key(1);
    const peers = new ServerPeers([peer('alice', 1, 'user', pk)]);
    pk.fill(7);
    expect(peers.lookup(key(1))?.name).toBe('alice');
    expect(peers.lookup(key(7))).toBeUndefined();
  });
});
