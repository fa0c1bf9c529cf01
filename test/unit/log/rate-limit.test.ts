import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EVENTS } from '../../../src/log/events.js';
import { createLogger, flushLogSummaries } from '../../../src/log/logger.js';
import { REFUSAL_LINES_PER_INTERVAL, REFUSAL_LOG_INTERVAL_MS, RefusalLimiter, refusalBucket } from '../../../src/log/rate-limit.js';

function capture(): Writable & { lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return Object.assign(w, {
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  });
}

describe('RefusalLimiter', () => {
  it('writes a few lines per interval, then one summary per interval with counts by reason', () => {
    let now = 0;
    const summaries: Array<Record<string, unknown>> = [];
    const limiter = new RefusalLimiter(
      (fields) => summaries.push(fields),
      () => now,
    );
    const id = refusalBucket({ event: EVENTS.authRefused }, {})!;
    let written = 0;
    for (let i = 0; i < 1000; i++) if (limiter.admit(id, i % 4 === 0 ? 'unknown-key' : 'rate-limited')) written++;
    expect(written).toBe(REFUSAL_LINES_PER_INTERVAL);
    expect(summaries).toHaveLength(0);
    now += REFUSAL_LOG_INTERVAL_MS;
    expect(limiter.admit(id, 'replay')).toBe(true); // a new interval: its first line, and the last interval's summary
    expect(summaries).toHaveLength(1);
    const suppressed = 1000 - REFUSAL_LINES_PER_INTERVAL;
    const unknown = 250 - 3; // lines 0, 4 and 8 were written
    expect(summaries[0]).toMatchObject({
      event: EVENTS.refusalsSuppressed,
      of: 'auth.refused',
      suppressed,
      reasons: { 'unknown-key': unknown, 'rate-limited': suppressed - unknown },
    });
    limiter.flush();
    expect(summaries).toHaveLength(1); // nothing pending
  });

  it('keeps one budget per peer for stream refusals and per device for reverse connections', () => {
    const a = refusalBucket({ event: EVENTS.streamRefused }, { peer: 'alice' })!;
    const b = refusalBucket({ event: EVENTS.streamRefused, peer: 'bob' }, {})!;
    const r = refusalBucket({ event: EVENTS.deviceStreamClose, device: 'build1', user: 'reverse' }, {})!;
    const onDevice = refusalBucket({ event: EVENTS.deviceStreamRefused, user: 'alice' }, {})!;
    const onDeviceOther = refusalBucket({ event: EVENTS.deviceStreamRefused, user: 'mallory' }, {})!;
    expect(new Set([a.key, b.key, r.key, onDevice.key, onDeviceOther.key]).size).toBe(5);
    expect(onDevice).toMatchObject({ identity: { user: 'alice' } });
    expect(r).toMatchObject({ of: 'reverse connection', identity: { device: 'build1' } });
    expect(refusalBucket({ event: EVENTS.deviceStreamClose, device: 'build1', user: 'alice' }, {})).toBeUndefined();
    expect(refusalBucket({ event: EVENTS.streamOpen }, { peer: 'alice' })).toBeUndefined();
    const limiter = new RefusalLimiter(
      () => {},
      () => 0,
    );
    for (let i = 0; i < 50; i++) limiter.admit(a, 'not-permitted');
    expect(limiter.admit(b, 'not-permitted')).toBe(true);
  });
});

describe('the logger rate-limits refusal lines', () => {
  it('a flood of refusals writes a bounded number of lines, and the summary at stop has the counts', () => {
    const out = capture();
    const seen: string[] = [];
    const log = createLogger({ level: 'info', destination: out, pretty: false, onEvent: (f) => seen.push(String(f.event)) });
    const peerLog = log.child({ peer: 'alice' });
    for (let i = 0; i < 2000; i++) log.warn({ event: EVENTS.authRefused, reason: 'unknown-key', remote: `127.0.0.1:${i}` }, 'handshake refused');
    for (let i = 0; i < 300; i++) peerLog.warn({ event: EVENTS.streamRefused, reason: 'not-permitted' }, 'refused');
    log.info({ event: EVENTS.streamOpen }, 'not limited');
    flushLogSummaries(log);
    const lines = out.lines();
    expect(lines.filter((l) => l.event === EVENTS.authRefused)).toHaveLength(REFUSAL_LINES_PER_INTERVAL);
    expect(lines.filter((l) => l.event === EVENTS.streamRefused)).toHaveLength(REFUSAL_LINES_PER_INTERVAL);
    const summaries = lines.filter((l) => l.event === EVENTS.refusalsSuppressed);
    expect(summaries).toHaveLength(2);
    expect(summaries).toContainEqual(
      expect.objectContaining({
        of: 'auth.refused',
        suppressed: 2000 - REFUSAL_LINES_PER_INTERVAL,
        reasons: { 'unknown-key': 2000 - REFUSAL_LINES_PER_INTERVAL },
      }),
    );
    expect(summaries).toContainEqual(expect.objectContaining({ of: 'stream.refused', peer: 'alice', suppressed: 300 - REFUSAL_LINES_PER_INTERVAL }));
    expect(lines.length).toBe(2 * REFUSAL_LINES_PER_INTERVAL + 1 + 2);
    // Metrics still count every refusal.
    expect(seen.filter((e) => e === EVENTS.authRefused)).toHaveLength(2000);
  });
});
