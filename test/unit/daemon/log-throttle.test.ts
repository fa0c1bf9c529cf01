import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LogThrottle, THROTTLED_LINES_PER_INTERVAL, THROTTLE_INTERVAL_MS } from '../../../src/daemon/log-throttle.js';

type LogLine = Record<string, unknown>;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
});

afterEach(() => {
  vi.useRealTimers();
});

function setup(): { throttle: LogThrottle; lines: LogLine[]; write: (n: number) => void } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  const throttle = new LogThrottle(log, { event: 'device.stream.refused', device: 'build1' }, 'refusals');
  const write = (n: number): void => {
    for (let i = 0; i < n; i++) throttle.line(() => log.warn({ event: 'device.stream.refused', n: i }, 'refused'));
  };
  return { throttle, lines, write };
}

describe('LogThrottle', () => {
  it('writes a few lines an interval one by one, then one summary line with the count of the rest', () => {
    const { lines, write } = setup();
    write(1_000);
    expect(lines).toHaveLength(THROTTLED_LINES_PER_INTERVAL);
    vi.advanceTimersByTime(THROTTLE_INTERVAL_MS);
    expect(lines).toHaveLength(THROTTLED_LINES_PER_INTERVAL + 1);
    expect(lines.at(-1)).toMatchObject({ event: 'device.stream.refused', device: 'build1', suppressed: 1_000 - THROTTLED_LINES_PER_INTERVAL });
    // A new interval writes again; no summary without suppressed lines.
    write(2);
    vi.advanceTimersByTime(10 * THROTTLE_INTERVAL_MS);
    expect(lines).toHaveLength(THROTTLED_LINES_PER_INTERVAL + 3);
  });

  it('close writes the pending summary and leaves no timer', () => {
    const { throttle, lines, write } = setup();
    write(THROTTLED_LINES_PER_INTERVAL + 3);
    throttle.close();
    expect(lines.at(-1)).toMatchObject({ suppressed: 3 });
    expect(vi.getTimerCount()).toBe(0);
  });
});
