import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../src/lib/token-bucket.js';

// The one token bucket (mux opens and no-data frames, handshake admission, device opens,
// reverse accepts). These cases were the mux's and the session's twin buckets' tests.
describe('TokenBucket', () => {
  it('refills at its rate up to its burst', () => {
    let now = 0;
    const bucket = new TokenBucket(20, 50, () => now);
    let taken = 0;
    while (bucket.take()) taken++;
    expect(taken).toBe(50);
    now += 100; // 2 tokens
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    now += 1_000_000;
    taken = 0;
    while (bucket.take() && taken < 1000) taken++;
    expect(taken).toBe(50);
  });

  it('allows its burst then its rate', () => {
    let now = 0;
    const b = new TokenBucket(10, 3, () => now);
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
    now = 50;
    expect(b.take()).toBe(false);
    now = 100;
    expect(b.take()).toBe(true);
  });

  it('spends a cost only when it is covered', () => {
    const b = new TokenBucket(1, 5, () => 0);
    expect(b.take(4)).toBe(true);
    expect(b.take(2)).toBe(false);
    expect(b.take(1)).toBe(true);
    expect(b.take(1)).toBe(false);
  });

  it('a refund gives tokens back, never beyond the burst', () => {
    const b = new TokenBucket(1, 2, () => 0);
    expect(b.take()).toBe(true);
    expect(b.take()).toBe(true);
    expect(b.take()).toBe(false);
    b.refund();
    expect(b.take()).toBe(true);
    b.refund(10);
    expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
  });
});
