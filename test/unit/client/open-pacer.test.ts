/** OpenPacer against a real mux pair whose server advertises its open limits in SETTINGS. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createChannelPair } from '../../../src/channel.js';
import { OpenPacer } from '../../../src/client/open-pacer.js';
import type { MuxLimits } from '../../../src/mux/mux-limits.js';
import { MuxSession } from '../../../src/mux/session.js';
import type { StreamRequest } from '../../../src/mux/stream-request.js';
import { quiet } from '../../helpers/streams.js';
import { waitUntil } from '../../helpers/wait.js';

const sessions: MuxSession[] = [];
// The clocks and timers of both sessions and the pacer are fake, moved by hand, so each test
// states the schedule exactly; the in-memory pair still delivers frames on real setImmediate turns.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
});
afterEach(() => {
  for (const s of sessions.splice(0)) s.close();
  vi.useRealTimers();
});

/** A client that has received the server's SETTINGS; the server records every open it sees. */
async function pair(limits: Partial<MuxLimits>, accept = true, advertise = true): Promise<{ client: MuxSession; seen: StreamRequest[] }> {
  const [a, b] = createChannelPair();
  const seen: StreamRequest[] = [];
  const server = new MuxSession(b, {
    role: 'server',
    limits,
    ...(advertise ? { advertise: {} } : {}),
    onStreamRequest: (r) => {
      seen.push(r);
      if (accept) quiet(r.accept());
    },
  });
  const client = new MuxSession(a, { role: 'client' });
  sessions.push(client, server);
  if (advertise) await waitUntil(() => client.peerSentSettings);
  return { client, seen };
}

describe('OpenPacer', () => {
  it('sends what fits at once and the rest first in, first out at the advertised rate, none refused', async () => {
    const { client, seen } = await pair({ openRatePerSecond: 10, openBurst: 4 });
    const pacer = new OpenPacer(client, { waitMs: 5_000 });
    // Half the advertised burst goes out at once.
    expect(quiet(pacer.tryOpen('t:1')!)).toBeDefined();
    expect(quiet(pacer.tryOpen('t:2')!)).toBeDefined();
    expect(pacer.tryOpen('t:3')).toBeUndefined();
    const queued = ['t:3', 't:4', 't:5', 't:6'].map((t) => pacer.open(t));
    expect(pacer.queued).toBe(4);
    // Then one every 100 ms (10 a second), not a millisecond sooner.
    for (let left = 3; left >= 0; left--) {
      await vi.advanceTimersByTimeAsync(99);
      expect(pacer.queued).toBe(left + 1);
      await vi.advanceTimersByTimeAsync(1);
      expect(pacer.queued).toBe(left);
    }
    expect(client.stats.streamsOpened).toBe(6);
    const streams = await Promise.all(queued.map((q) => q.stream));
    await waitUntil(() => seen.length === 6, 'six opens seen');
    expect(seen.map((r) => r.target)).toEqual(['t:1', 't:2', 't:3', 't:4', 't:5', 't:6']);
    await waitUntil(() => streams.every((s) => s.state === 'open'), 'all open');
    expect(client.stats.streamsRefused).toBe(0);
  });

  it('before SETTINGS or a first answer, sends one open at a time; a server without SETTINGS then gets the defaults', async () => {
    const { client, seen } = await pair({}, false, false);
    const pacer = new OpenPacer(client, { waitMs: 5_000 });
    expect(quiet(pacer.tryOpen('s:1')!)).toBeDefined();
    expect(pacer.tryOpen('s:2')).toBeUndefined();
    const queued = ['s:2', 's:3', 's:4'].map((t) => pacer.open(t));
    await waitUntil(() => seen.length === 1);
    // Nothing else goes out while the first open is unanswered, however often the pacer wakes
    // (just short of waitMs, which would refuse the waiting ones).
    await vi.advanceTimersByTimeAsync(4_999);
    expect(pacer.queued).toBe(3);
    expect(client.stats.streamsOpened).toBe(1);
    expect(seen).toHaveLength(1);
    // The first answer (no SETTINGS before it): the defaults hold, the rest go out together.
    quiet(seen[0]!.accept());
    await Promise.all(queued.map((q) => q.stream));
    await waitUntil(() => seen.length === 4);
    expect(client.peerSentSettings).toBe(false);
  });

  it('waits for the pending-open cap: an unanswered open holds its slot until answered', async () => {
    const { client, seen } = await pair({ openRatePerSecond: 1000, openBurst: 1000, maxPendingOpens: 1 }, false);
    const pacer = new OpenPacer(client, { waitMs: 5_000 });
    expect(quiet(pacer.tryOpen('p:1')!)).toBeDefined();
    const second = pacer.open('p:2');
    await waitUntil(() => seen.length === 1);
    // The rate would allow it at once; the slot does not, for as long as the open may wait.
    await vi.advanceTimersByTimeAsync(4_999);
    expect(pacer.queued).toBe(1);
    expect(client.stats.streamsOpened).toBe(1);
    expect(seen).toHaveLength(1);
    quiet(seen[0]!.accept());
    await second.stream;
    await waitUntil(() => seen.length === 2);
  });

  it('refuses an open that waited past waitMs, or with the queue full, with reason limit; a cancelled open is never sent', async () => {
    const { client, seen } = await pair({ openRatePerSecond: 1, openBurst: 1 });
    const pacer = new OpenPacer(client, { waitMs: 200, maxQueued: 2 });
    expect(quiet(pacer.tryOpen('q:1')!)).toBeDefined();
    const late = pacer.open('q:2');
    const cancelled = pacer.open('q:3');
    cancelled.cancel();
    const full = [pacer.open('q:4'), pacer.open('q:5')];
    await expect(full[1]!.stream).rejects.toMatchObject({ code: 'ERR_MUX_STREAM_REFUSED', reason: 'limit', message: expect.stringMatching(/open queue full/) });
    const outcomes = [late, full[0]!].map((o) =>
      o.stream.then(
        () => 'sent',
        (err: { reason?: string; message: string }) => `${err.reason}: ${err.message}`,
      ),
    );
    // Still waiting 1 ms before the deadline, refused at it (the next token is 1 s away).
    await vi.advanceTimersByTimeAsync(199);
    expect(pacer.queued).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(await Promise.all(outcomes)).toEqual([
      expect.stringMatching(/^limit: open of q:2 waited 200 ms/),
      expect.stringMatching(/^limit: open of q:4 waited 200 ms/),
    ]);
    expect(pacer.queued).toBe(0);
    expect(seen.map((r) => r.target)).toEqual(['q:1']);
  });

  it('fails waiting opens, and later ones, with tunnel-closed once the session ends', async () => {
    const { client } = await pair({ openRatePerSecond: 1, openBurst: 1 });
    const pacer = new OpenPacer(client, { waitMs: 60_000 });
    quiet(pacer.tryOpen('c:1')!);
    const waiting = pacer.open('c:2');
    client.close();
    await expect(waiting.stream).rejects.toMatchObject({ code: 'ERR_MUX_STREAM_REFUSED', reason: 'tunnel-closed' });
    expect(pacer.queued).toBe(0);
    await expect(pacer.open('c:3').stream).rejects.toMatchObject({ reason: 'tunnel-closed' });
  });
});
