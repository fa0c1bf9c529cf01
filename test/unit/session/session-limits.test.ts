import { describe, expect, it } from 'vitest';
import { DEFAULT_SESSION_LIMITS, resolveSessionLimits } from '../../../src/session/session-limits.js';
import { AddressRateLimiter, TokenBucket, addressKey } from '../../../src/session/rate-limit.js';
import { ReplayGuard } from '../../../src/session/replay-guard.js';
import { SessionTimers } from '../../../src/session/timers.js';
import { tai64nNow } from '../../../src/session/tai64n.js';
import { waitUntil } from '../../helpers/wait.js';

describe('session limits', () => {
  it('defaults follow SECURITY.md', () => {
    const l = resolveSessionLimits();
    expect(l).toEqual(DEFAULT_SESSION_LIMITS);
    expect(l.handshakeTimeoutMs).toBe(5_000);
    expect(l.maxUnauthenticated).toBe(256);
    expect(l.maxUnauthenticatedPerAddress).toBe(16);
    expect(l.rekeyAfterMs).toBe(120_000);
    expect(l.rejectAfterMs).toBe(180_000);
    expect(l.keepaliveIntervalMs).toBe(10_000);
    expect(l.deadAfterMs).toBe(30_000);
    expect(Object.isFrozen(l)).toBe(true);
  });
  it('rejects unknown, non-integer and inconsistent values', () => {
    const bad: Array<Record<string, unknown>> = [
      { nope: 1 }, { rekeyAfterMs: 0 }, { rekeyAfterMs: 1.5 }, { deadAfterMs: -1 }, { keepaliveIntervalMs: '5' },
      { rekeyAfterMs: 200_000 }, { keepaliveIntervalMs: 40_000 }, { maxUnauthenticatedPerAddress: 300 }, { handshakeTimeoutMs: 2 ** 31 },
    ];
    for (const b of bad) {
      expect(() => resolveSessionLimits(b as never), JSON.stringify(b)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    }
  });
});

describe('rate limits', () => {
  it('a token bucket allows its burst then its rate', () => {
    const b = new TokenBucket(10, 3, 0);
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect(b.take(50)).toBe(false);
    expect(b.take(100)).toBe(true);
  });
  it('per-address buckets are independent and the map stays bounded', () => {
    let now = 0;
    const r = new AddressRateLimiter(1, 1, 100, () => now);
    expect(r.take('a')).toBe(true);
    expect(r.take('a')).toBe(false);
    expect(r.take('b')).toBe(true);
    for (let i = 0; i < 1000; i++) r.take(`x${i}`);
    expect(r.size).toBe(100);
    now = 1000;
    expect(r.take('a')).toBe(true);
  });
  it('groups IPv6 by /64 and unwraps IPv4-mapped addresses', () => {
    expect(addressKey('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(addressKey('192.168.1.1')).toBe('192.168.1.1');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    expect(addressKey('2001:db8:1:2::1')).not.toBe(addressKey('2001:db8:1:3::1'));
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
  });
});

describe('replay guard', () => {
  it('accepts only strictly newer timestamps, at least 20 ms apart', () => {
    let now = 0;
    const g = new ReplayGuard(() => now);
    const t0 = tai64nNow(1_700_000_000_000);
    expect(g.check('k', t0)).toBe('ok');
    expect(g.check('k', t0)).toBe('replay');
    now = 5;
    expect(g.check('k', tai64nNow(1_700_000_001_000))).toBe('too-soon');
    now = 30;
    expect(g.check('k', tai64nNow(1_700_000_001_000))).toBe('ok');
    expect(g.check('k', t0)).toBe('replay');
    expect(g.check('other', t0)).toBe('ok');
  });
});

describe('session timers', () => {
  const limits = resolveSessionLimits({ keepaliveIntervalMs: 20, deadAfterMs: 60, rekeyAfterMs: 30, rejectAfterMs: 80 });
  it('fires keepalive, rekey, reject and dead hooks, and stop() clears everything', async () => {
    const fired: string[] = [];
    const t = new SessionTimers(limits, true, {
      sendKeepalive: () => { fired.push('keepalive'); t.onDataSent(); },
      peerDead: () => fired.push('dead'),
      rekeyDue: () => fired.push('rekey'),
      keysExpired: () => fired.push('expired'),
    });
    t.onHandshakeComplete();
    await waitUntil(() => fired.includes('dead') && fired.includes('expired'), 'condition', 2_000);
    expect(fired).toContain('keepalive');
    expect(fired).toContain('rekey');
    expect(fired).toContain('expired');
    t.stop();
    expect(t.active).toBe(false);
  });
  it('received records postpone the dead timer', async () => {
    const fired: string[] = [];
    const t = new SessionTimers(limits, false, {
      sendKeepalive: () => t.onDataSent(), peerDead: () => fired.push('dead'), rekeyDue: () => {}, keysExpired: () => {},
    });
    const end = performance.now() + 150;
    while (performance.now() < end) {
      t.onRecordReceived();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(fired).toEqual([]);
    t.stop();
  });
});
