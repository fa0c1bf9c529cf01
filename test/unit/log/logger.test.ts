import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, REDACTED } from '../../../src/log/logger.js';
import { EVENTS } from '../../../src/log/events.js';
import { MAX_LOG_BACKLOG_BYTES, safeDestination } from '../../../src/log/safe-destination.js';

/** A writable that records what it gets. */
function capture(): Writable & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return Object.assign(w, { text: () => chunks.join('') });
}

const SECRET = 'c2VjcmV0LXBzay12YWx1ZS1kby1ub3QtbG9nLWl0ISE=';

describe('createLogger', () => {
  it('writes one JSON line per call with the event name', () => {
    const out = capture();
    const log = createLogger({ level: 'info', destination: out, pretty: false });
    log.info({ event: EVENTS.streamOpen, peer: 'alice', target: 'db:22' }, 'stream opened');
    log.debug('not at this level');
    const lines = out.text().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, event: 'stream.open', peer: 'alice', target: 'db:22', msg: 'stream opened' });
  });

  it('redacts secret fields at the top level and one level down', () => {
    const out = capture();
    const log = createLogger({ level: 'trace', destination: out, pretty: false });
    log.info({ psk: SECRET, privateKey: SECRET, secret: SECRET, peer: { name: 'alice', psk: SECRET, privateKey: SECRET } }, 'x');
    log.child({ psk: SECRET }).warn({ config: { proxy: `http://u:${SECRET}@p:1` } }, 'y');
    const text = out.text();
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(SECRET.slice(0, 16));
    const first = JSON.parse(text.split('\n')[0]!);
    expect(first.psk).toBe(REDACTED);
    expect(first.peer).toEqual({ name: 'alice', psk: REDACTED, privateKey: REDACTED });
  });

  it('pretty mode prints a short human line and still redacts', () => {
    const out = capture();
    const log = createLogger({ level: 'info', destination: out, pretty: true });
    log.warn({ event: EVENTS.authRefused, reason: 'unknown-key', psk: SECRET }, 'handshake refused');
    const line = out.text();
    expect(line).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN  handshake refused event=auth\.refused reason=unknown-key psk=\[redacted\]\n$/);
  });

  it('an erroring destination (EPIPE) neither throws nor crashes; later lines are dropped', async () => {
    const dest = new Writable({
      write(_chunk, _enc, cb) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const log = createLogger({ level: 'info', destination: dest, pretty: false });
    expect(() => log.info('first')).not.toThrow();
    await new Promise<void>((resolve) => dest.once('close', () => resolve()));
    expect(dest.destroyed).toBe(true);
    expect(() => log.error({ event: EVENTS.internalError }, 'after the pipe broke')).not.toThrow();
  });

  it('a destination whose write throws synchronously (ENOSPC on a sync file stream) does not throw', () => {
    const dest = new Writable({ write: (_c, _e, cb) => cb() });
    dest.write = () => {
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    };
    const log = createLogger({ level: 'info', destination: dest, pretty: false });
    expect(() => log.info('disk full')).not.toThrow();
  });
});

describe('safeDestination', () => {
  it('drops lines above the backlog and reports the count once the stream drains', async () => {
    const received: string[] = [];
    let release: (() => void) | undefined;
    const slow = new Writable({
      highWaterMark: 16,
      write(chunk: Buffer, _enc, cb) {
        received.push(chunk.toString());
        if (release === undefined)
          release = cb; // hold the first write: everything else queues
        else cb();
      },
    });
    const dest = safeDestination(slow, (n) => `dropped ${n}\n`);
    const line = `${'x'.repeat(1023)}\n`;
    const total = Math.ceil(MAX_LOG_BACKLOG_BYTES / line.length) + 10;
    for (let i = 0; i < total; i++) dest.write(line);
    expect(dest.dropped).toBeGreaterThanOrEqual(9);
    expect(dest.dropped).toBeLessThan(total);
    const droppedBefore = dest.dropped;
    release!();
    await new Promise<void>((resolve) => (slow.writableLength === 0 ? resolve() : slow.once('drain', () => resolve())));
    dest.write('after\n');
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(received.slice(-2)).toEqual([`dropped ${droppedBefore}\n`, 'after\n']);
  });
});
