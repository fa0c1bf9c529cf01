import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_SESSION_LIMITS, resolveSessionLimits } from '../../../src/session/session-limits.js';
import { AddressRateLimiter, addressKey } from '../../../src/session/rate-limit.js';
import { ReplayGuard } from '../../../src/session/replay-guard.js';
import { SessionTimers } from '../../../src/session/timers.js';
import { tai64nNow } from '../../../src/session/tai64n.js';

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
      { nope: 1 },
      { rekeyAfterMs: 0 },
      { rekeyAfterMs: 1.5 },
      { deadAfterMs: -1 },
      { keepaliveIntervalMs: '5' },
      { rekeyAfterMs: 200_000 },
      { keepaliveIntervalMs: 40_000 },
      { maxUnauthenticatedPerAddress: 300 },
      { handshakeTimeoutMs: 2 ** 31 },
    ];
    for (const b of bad) {
      expect(() => resolveSessionLimits(b as never), JSON.stringify(b)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    }
  });
});

describe('rate limits', () => {
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
  it('a refund gives the address its token back', () => {
    const now = 0;
    const r = new AddressRateLimiter(1, 1, 100, () => now);
    expect(r.take('a')).toBe(true);
    expect(r.take('a')).toBe(false);
    r.refund('a');
    expect(r.take('a')).toBe(true);
    expect(r.take('a')).toBe(false);
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
  // Fake timers and clock: each hook is asserted at the exact millisecond it is due.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const limits = resolveSessionLimits({ keepaliveIntervalMs: 20, deadAfterMs: 60, rekeyAfterMs: 30, rejectAfterMs: 80 });
  /** Records when (ms since creation) each hook fired. */
  function timers(initiator: boolean): { t: SessionTimers; fired: Record<string, number[]> } {
    const start = Date.now();
    const fired: Record<string, number[]> = { keepalive: [], dead: [], rekey: [], expired: [] };
    const at = (hook: string) => (): void => void fired[hook]!.push(Date.now() - start);
    const t: SessionTimers = new SessionTimers(
      limits,
      initiator,
      {
        sendKeepalive: () => {
          at('keepalive')();
          t.onDataSent();
        },
        peerDead: at('dead'),
        rekeyDue: at('rekey'),
        keysExpired: at('expired'),
      },
      () => Date.now(),
    );
    return { t, fired };
  }

  it('fires keepalive, rekey, reject and dead hooks when due, and stop() clears everything', () => {
    const { t, fired } = timers(true);
    t.onHandshakeComplete();
    vi.advanceTimersByTime(100);
    expect(fired).toEqual({ keepalive: [20, 40, 60, 80, 100], rekey: [30], dead: [60], expired: [80] });
    t.stop();
    expect(t.active).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    // Stopped with the dead and reject timers still armed: none of them fires later.
    const early = timers(true);
    early.t.onHandshakeComplete();
    vi.advanceTimersByTime(50);
    early.t.stop();
    expect(early.t.active).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(early.fired).toEqual({ keepalive: [20, 40], rekey: [30], dead: [], expired: [] });
    expect(fired.keepalive).toHaveLength(5);
  });
  it('sent records postpone the keepalive; the responder rekeys with slack after the initiator', () => {
    const { t, fired } = timers(false);
    t.onHandshakeComplete();
    vi.advanceTimersByTime(15);
    t.onDataSent();
    vi.advanceTimersByTime(35);
    // Idle from 15: the keepalive is due at 35, then every 20 ms; the rekey at 30 + ceil(30 / 8).
    expect(fired.keepalive).toEqual([35]);
    expect(fired.rekey).toEqual([34]);
    t.stop();
  });
  it('received records postpone the dead timer', () => {
    const { t, fired } = timers(false);
    for (let i = 0; i < 15; i++) {
      vi.advanceTimersByTime(10);
      t.onRecordReceived();
    }
    // Records arrived every 10 ms for 150 ms: the peer is alive; dead exactly deadAfterMs after the last.
    vi.advanceTimersByTime(59);
    expect(fired.dead).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired.dead).toEqual([210]);
    t.stop();
  });
});
