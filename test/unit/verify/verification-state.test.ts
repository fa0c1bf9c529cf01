import { describe, expect, it } from 'vitest';
import { MAX_VERIFICATIONS, VerificationStore } from '../../../src/verify/verification-state.js';

const v = (identity: string, now: number, validMs = 1_000) => ({ method: 'totp' as const, identity, groups: [], verifiedAt: now, expiresAt: now + validMs });

describe('verification state', () => {
  it('holds a verification per key until it expires, indexed by identity', () => {
    let now = 0;
    const store = new VerificationStore(() => now);
    store.set('k1', v('alice', 0));
    store.set('k2', v('alice', 0, 5_000));
    expect(store.keysOf('alice').sort()).toEqual(['k1', 'k2']);
    now = 999;
    expect(store.get('k1')?.identity).toBe('alice');
    now = 1_000;
    expect(store.get('k1')).toBeUndefined();
    expect(store.keysOf('alice')).toEqual(['k2']);
    expect(store.delete('k2')).toBe(true);
    expect(store.keysOf('alice')).toEqual([]);
  });

  it('a key verified again by another person moves in the identity index', () => {
    const store = new VerificationStore(() => 0);
    store.set('k1', v('alice', 0));
    store.set('k1', v('bob', 0));
    expect(store.keysOf('alice')).toEqual([]);
    expect(store.keysOf('bob')).toEqual(['k1']);
  });

  it('prune drops the expired and the refused; capExpiry only shortens', () => {
    let now = 0;
    const store = new VerificationStore(() => now);
    store.set('k1', v('a', 0, 10_000));
    store.set('k2', v('b', 0, 10_000));
    store.set('k3', v('c', 0, 10));
    now = 100;
    expect(store.prune((key) => key !== 'k2')).toBe(2);
    expect(store.size).toBe(1);
    store.capExpiry('k1', 50_000);
    expect(store.get('k1')?.expiresAt).toBe(10_000);
    store.capExpiry('k1', 200);
    expect(store.get('k1')?.expiresAt).toBe(200);
  });

  it('is bounded', () => {
    const store = new VerificationStore(() => 0);
    for (let i = 0; i <= MAX_VERIFICATIONS; i++) store.set(`k${i}`, v(`p${i}`, 0));
    expect(store.size).toBe(MAX_VERIFICATIONS);
    expect(store.get('k0')).toBeUndefined();
    expect(store.get(`k${MAX_VERIFICATIONS}`)).toBeDefined();
  });
});
