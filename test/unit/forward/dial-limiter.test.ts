/** The per-session dial limiter the server's stream opens go through (src/server/target-streams.ts). */
import { describe, expect, it } from 'vitest';
import { DialLimiter } from '../../../src/forward/dial-limiter.js';

describe('DialLimiter', () => {
  it('holds at most maxInFlight dials, queues the rest in order, refuses beyond the queue', async () => {
    const limiter = new DialLimiter({ maxInFlight: 2, maxQueued: 2 });
    const release: Array<() => void> = [];
    const started: number[] = [];
    const run = (i: number): Promise<number> =>
      limiter.run(
        () =>
          new Promise<number>((resolve) => {
            started.push(i);
            release.push(() => resolve(i));
          }),
      );
    const all = [run(1), run(2), run(3), run(4)];
    const refused = run(5);
    await expect(refused).rejects.toMatchObject({ code: 'ERR_DIAL_LIMIT', reason: 'limit' });
    await Promise.resolve();
    expect(started).toEqual([1, 2]);
    expect(limiter.inFlight).toBe(2);
    expect(limiter.queued).toBe(2);
    release.shift()!();
    await expect(all[0]).resolves.toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([1, 2, 3]);
    expect(limiter.inFlight).toBe(2);
    while (release.length > 0) {
      release.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    await expect(Promise.all(all)).resolves.toEqual([1, 2, 3, 4]);
    expect(limiter.inFlight).toBe(0);
  });

  it('frees the slot when a dial fails, and cancels waiters', async () => {
    const limiter = new DialLimiter({ maxInFlight: 1 });
    await expect(limiter.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(limiter.inFlight).toBe(0);
    let finish!: () => void;
    const first = limiter.run(() => new Promise<void>((r) => (finish = r)));
    const ac = new AbortController();
    const waiting = limiter.run(async () => 'never', ac.signal);
    const cleared = limiter.run(async () => 'never');
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ reason: 'cancel' });
    limiter.clear();
    await expect(cleared).rejects.toMatchObject({ reason: 'tunnel-closed' });
    finish();
    await first;
    expect(limiter.inFlight).toBe(0);
    expect(limiter.queued).toBe(0);
  });

  it('a waiter cancelled in the queue does not stall the ones behind it (issue 13, item 12)', async () => {
    const limiter = new DialLimiter({ maxInFlight: 1 });
    let finish!: () => void;
    const first = limiter.run(() => new Promise<void>((r) => (finish = r)));
    const ac = new AbortController();
    const cancelled = limiter.run(async () => 'cancelled one ran', ac.signal);
    let dialed = false;
    const next = limiter.run(async () => {
      dialed = true;
      return 'next';
    });
    expect(limiter.queued).toBe(2);
    ac.abort();
    await expect(cancelled).rejects.toMatchObject({ code: 'ERR_DIAL_LIMIT', reason: 'cancel' });
    expect(limiter.queued).toBe(1);
    finish();
    await first;
    await expect(next).resolves.toBe('next');
    expect(dialed).toBe(true);
    expect(limiter.inFlight).toBe(0);
    expect(limiter.queued).toBe(0);
  });

  it('a dial that returns at once (its open was cancelled when the slot came) passes the slot on', async () => {
    const limiter = new DialLimiter({ maxInFlight: 1 });
    let finish!: () => void;
    const first = limiter.run(() => new Promise<void>((r) => (finish = r)));
    const skipped = limiter.run(async () => undefined);
    const next = limiter.run(async () => 'next');
    await new Promise((r) => setImmediate(r));
    finish();
    await first;
    await expect(skipped).resolves.toBeUndefined();
    await expect(next).resolves.toBe('next');
    expect(limiter.inFlight).toBe(0);
  });
});
