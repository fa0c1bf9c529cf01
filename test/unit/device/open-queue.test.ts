/**
 * The server's queue of opens into a device (issue 13 item 1): shaped to the device's limits,
 * round-robin across requesters and their sessions, a share cap per requester, bounded, with a
 * timeout. Fake timers and a clock that follows them; no real waiting.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_MUX_LIMITS } from '../../../src/mux/mux-limits.js';
import { DeviceOpenQueue, deviceOpenLimits, type DeviceOpenLimits, type OpenSlot, type QueuedOpen } from '../../../src/device/open-queue.js';

const LIMITS: DeviceOpenLimits = {
  openRatePerSecond: 10,
  openBurst: 4,
  maxStreams: 20,
  maxInFlight: 8,
  maxStreamsPerKey: 10,
  maxQueued: 30,
  maxQueuedPerKey: 12,
  queueTimeoutMs: 5_000,
};

interface Probe {
  readonly started: string[];
  readonly refused: Array<{ id: string; reason: string; detail: string }>;
  readonly slots: Map<string, OpenSlot>;
  submit(key: string, session: object, id: string, signal?: AbortSignal): void;
}

function probe(queue: DeviceOpenQueue, settle: 'hold' | 'finish'): Probe {
  const started: string[] = [];
  const refused: Probe['refused'] = [];
  const slots = new Map<string, OpenSlot>();
  return {
    started,
    refused,
    slots,
    submit(key, session, id, signal) {
      const open: QueuedOpen = {
        key,
        session,
        ...(signal ? { signal } : {}),
        start: (slot) => {
          started.push(id);
          slots.set(id, slot);
          if (settle === 'finish') slot.done();
        },
        refuse: (reason, detail) => refused.push({ id, reason, detail }),
      };
      queue.submit(open);
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

const clock = (): number => Date.now();

describe('deviceOpenLimits', () => {
  it("stays inside the device session's defaults with a margin", () => {
    const l = deviceOpenLimits(DEFAULT_MUX_LIMITS);
    expect(l.openRatePerSecond).toBeLessThan(DEFAULT_MUX_LIMITS.openRatePerSecond);
    expect(l.openBurst).toBeLessThan(DEFAULT_MUX_LIMITS.openBurst);
    expect(l.maxStreams).toBeLessThan(DEFAULT_MUX_LIMITS.maxStreams);
    expect(l.maxInFlight).toBeLessThan(DEFAULT_MUX_LIMITS.maxPendingOpens);
    expect(l.maxStreamsPerKey).toBeLessThanOrEqual(l.maxStreams / 2 + 1);
    expect(deviceOpenLimits({ openRatePerSecond: 1, openBurst: 1, maxStreams: 1, maxPendingOpens: 1 })).toMatchObject({
      openRatePerSecond: 1,
      openBurst: 1,
      maxStreams: 1,
      maxInFlight: 1,
      maxStreamsPerKey: 1,
    });
  });
});

describe('DeviceOpenQueue', () => {
  it('sends a burst, then no faster than the rate, however many opens wait', () => {
    const q = new DeviceOpenQueue(LIMITS, () => 0, clock);
    const p = probe(q, 'finish');
    for (let i = 0; i < 12; i++) p.submit('a', {}, `a${i}`);
    expect(p.started).toHaveLength(LIMITS.openBurst);
    vi.advanceTimersByTime(500); // 10/s: five more
    expect(p.started.length).toBeGreaterThanOrEqual(LIMITS.openBurst + 4);
    expect(p.started.length).toBeLessThanOrEqual(LIMITS.openBurst + 5);
    vi.advanceTimersByTime(1_000);
    expect(p.started).toHaveLength(12);
    expect(p.refused).toEqual([]);
  });

  it('serves requesters round-robin: a newcomer waits behind at most one open of a busy key, however many sessions it has', () => {
    const q = new DeviceOpenQueue({ ...LIMITS, maxQueuedPerKey: 30 }, () => 0, clock);
    const p = probe(q, 'finish');
    const sessions = Array.from({ length: 10 }, () => ({}));
    for (let i = 0; i < 20; i++) p.submit('mallory', sessions[i % 10]!, `m${i}`);
    expect(p.started).toHaveLength(LIMITS.openBurst);
    p.submit('bob', {}, 'bob');
    vi.advanceTimersByTime(200); // two tokens
    expect(p.started.slice(LIMITS.openBurst, LIMITS.openBurst + 2)).toContain('bob');
  });

  it("serves a key's sessions round-robin", () => {
    const q = new DeviceOpenQueue({ ...LIMITS, openBurst: 1 }, () => 0, clock);
    const p = probe(q, 'finish');
    const [s1, s2] = [{}, {}];
    for (let i = 0; i < 4; i++) p.submit('k', s1, `one${i}`);
    for (let i = 0; i < 2; i++) p.submit('k', s2, `two${i}`);
    vi.advanceTimersByTime(1_000);
    expect(p.started.slice(0, 5)).toEqual(['one0', 'one1', 'two0', 'one2', 'two1']);
  });

  it('caps opens in flight until the device answers', () => {
    const q = new DeviceOpenQueue({ ...LIMITS, openBurst: 20, openRatePerSecond: 1_000 }, () => 0, clock);
    const p = probe(q, 'hold');
    for (let i = 0; i < 10; i++) p.submit(`k${i}`, {}, `o${i}`);
    expect(p.started).toHaveLength(LIMITS.maxInFlight);
    p.slots.get('o0')!.answered();
    expect(p.started).toHaveLength(LIMITS.maxInFlight + 1);
  });

  it("holds one requester to its share of the device's streams; others still get theirs", () => {
    const q = new DeviceOpenQueue({ ...LIMITS, openBurst: 20, openRatePerSecond: 1_000 }, () => 0, clock);
    const p = probe(q, 'hold');
    for (let i = 0; i < 12; i++) {
      p.submit('mallory', {}, `m${i}`);
      vi.advanceTimersByTime(10);
      for (const slot of p.slots.values()) slot.answered();
    }
    expect(p.started.filter((id) => id.startsWith('m'))).toHaveLength(LIMITS.maxStreamsPerKey);
    p.submit('bob', {}, 'bob');
    expect(p.started).toContain('bob');
    p.slots.get('m0')!.done();
    expect(p.started).toContain('m10');
  });

  it("starts nothing while the device session's streams are at the limit", () => {
    let streams = LIMITS.maxStreams;
    const q = new DeviceOpenQueue(LIMITS, () => streams, clock);
    const p = probe(q, 'finish');
    p.submit('a', {}, 'a0');
    vi.advanceTimersByTime(1_000);
    expect(p.started).toEqual([]);
    streams--;
    vi.advanceTimersByTime(200);
    expect(p.started).toEqual(['a0']);
  });

  it('is bounded per requester and in all, refusing with limit at once', () => {
    const q = new DeviceOpenQueue({ ...LIMITS, openBurst: 1, openRatePerSecond: 1 }, () => 0, clock);
    const p = probe(q, 'finish');
    p.submit('a', {}, 'a0'); // the burst: started at once
    for (let i = 1; i <= LIMITS.maxQueuedPerKey + 1; i++) p.submit('a', {}, `a${i}`);
    expect(p.refused).toEqual([
      { id: `a${LIMITS.maxQueuedPerKey + 1}`, reason: 'limit', detail: expect.stringMatching(/opens of this requester already wait/) },
    ]);
    expect(q.queued).toBe(LIMITS.maxQueuedPerKey);
    for (let k = 0; k < 20; k++) p.submit(`k${k}`, {}, `k${k}`);
    expect(q.queued).toBe(LIMITS.maxQueued);
    const full = p.refused.filter((r) => /opens already wait for this device/.test(r.detail));
    expect(full.map((r) => r.id)).toEqual(['k18', 'k19']);
    expect(full.every((r) => r.reason === 'limit')).toBe(true);
  });

  it('refuses an open that waited too long with timeout; one whose requester gave up leaves silently', () => {
    const q = new DeviceOpenQueue(LIMITS, () => LIMITS.maxStreams, clock);
    const p = probe(q, 'finish');
    const gaveUp = new AbortController();
    p.submit('b', {}, 'gave-up', gaveUp.signal);
    p.submit('c', {}, 'waits');
    gaveUp.abort();
    expect(q.queued).toBe(1);
    vi.advanceTimersByTime(LIMITS.queueTimeoutMs + 1);
    expect(p.started).toEqual([]);
    expect(p.refused).toEqual([{ id: 'waits', reason: 'timeout', detail: `no open slot within ${LIMITS.queueTimeoutMs} ms` }]);
    expect(q.queued).toBe(0);
  });

  it('close refuses every queued open with device-offline and starts nothing after', () => {
    const q = new DeviceOpenQueue({ ...LIMITS, openBurst: 1, openRatePerSecond: 1 }, () => 0, clock);
    const p = probe(q, 'finish');
    p.submit('a', {}, 'a0');
    p.submit('a', {}, 'a1');
    p.submit('b', {}, 'b0');
    q.close();
    expect(p.refused.map((r) => [r.id, r.reason]).sort()).toEqual([
      ['a1', 'device-offline'],
      ['b0', 'device-offline'],
    ]);
    vi.advanceTimersByTime(10_000);
    expect(p.started).toEqual(['a0']);
    p.submit('a', {}, 'late');
    expect(p.refused.at(-1)).toMatchObject({ id: 'late', reason: 'device-offline' });
  });
});
