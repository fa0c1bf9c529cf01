import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { compileRules } from '../../../src/policy/access-rules.js';
import { Allowlist, keyId, type AllowlistEntry } from '../../../src/policy/allowlist.js';

const key = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const entry = (name: string, n: number, extra: Partial<AllowlistEntry> = {}): AllowlistEntry => ({
  name, publicKey: key(n), rules: compileRules(['10.0.0.0/8:22']), ...extra,
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return hasCode(err, 'ERR_POLICY_BAD_PEER') ? 'ERR_POLICY_BAD_PEER' : String(err);
  }
  return undefined;
}

describe('Allowlist', () => {
  it('looks peers up by public key and by name', () => {
    const list = new Allowlist([entry('alice', 1), entry('printer', 2, { kind: 'device', psk: key(9) })]);
    expect(list.size).toBe(2);
    expect(list.lookup(key(1))?.name).toBe('alice');
    expect(list.lookup(key(2))?.kind).toBe('device');
    expect(list.lookup(key(3))).toBeUndefined();
    expect(list.lookup(new Uint8Array(31))).toBeUndefined();
    expect(list.byName('printer')?.publicKey).toEqual(key(2));
    expect(list.names().sort()).toEqual(['alice', 'printer']);
    // A key inside a larger buffer (a subarray) finds the same peer.
    const big = new Uint8Array(40);
    big.set(key(1), 4);
    expect(list.lookup(big.subarray(4, 36))?.name).toBe('alice');
  });

  it('keeps its own copies of keys', () => {
    const pk = key(1);
    const list = new Allowlist([{ name: 'alice', publicKey: pk, rules: compileRules([]) }]);
    pk.fill(7);
    expect(list.lookup(key(1))?.name).toBe('alice');
    expect(list.lookup(key(7))).toBeUndefined();
  });

  it('refuses duplicate names, duplicate keys and wrong sizes', () => {
    expect(codeOf(() => new Allowlist([entry('a', 1), entry('a', 2)]))).toBe('ERR_POLICY_BAD_PEER');
    expect(codeOf(() => new Allowlist([entry('a', 1), entry('b', 1)]))).toBe('ERR_POLICY_BAD_PEER');
    expect(codeOf(() => new Allowlist([{ ...entry('a', 1), publicKey: new Uint8Array(31) }]))).toBe('ERR_POLICY_BAD_PEER');
    expect(codeOf(() => new Allowlist([entry('a', 1, { psk: new Uint8Array(16) })]))).toBe('ERR_POLICY_BAD_PEER');
    expect(codeOf(() => new Allowlist([entry('', 1)]))).toBe('ERR_POLICY_BAD_PEER');
  });

  it('replaceAll reports removed, changed and added keys', () => {
    const list = new Allowlist([entry('alice', 1), entry('bob', 2), entry('carol', 3, { psk: key(8) }), entry('dave', 4), entry('erin', 5)]);
    const diff = list.replaceAll([
      entry('alice', 1), // unchanged
      { ...entry('bob', 2), rules: compileRules(['10.0.0.0/8:22', '10.0.0.0/8:443']) }, // rules changed
      entry('carol', 3, { psk: key(9) }), // psk changed
      entry('dave', 4, { kind: 'device' }), // kind changed
      entry('frank', 6), // added; erin removed
    ]);
    expect([...diff.removed]).toEqual([keyId(key(5))]);
    expect([...diff.changed].sort()).toEqual([keyId(key(2)), keyId(key(3)), keyId(key(4))].sort());
    expect([...diff.added]).toEqual([keyId(key(6))]);
    expect(list.lookup(key(5))).toBeUndefined();
    expect(list.lookup(key(6))?.name).toBe('frank');
  });

  it('leaves the list unchanged when a replacement is invalid', () => {
    const list = new Allowlist([entry('alice', 1)]);
    expect(codeOf(() => list.replaceAll([entry('x', 2), entry('x', 3)]))).toBe('ERR_POLICY_BAD_PEER');
    expect(list.lookup(key(1))?.name).toBe('alice');
    expect(list.size).toBe(1);
  });
});
