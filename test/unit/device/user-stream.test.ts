/**
 * The user's side of a device stream (openUserStream), alone and as the client daemon opens it:
 * no pinned key, no stream (never plaintext, nothing sent), and the daemon's log names the
 * end-to-end failure by its code (an E2EError, told apart by its type, not by a code prefix).
 */
import type { Duplex } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ClientDaemon } from '../../../src/client/client-daemon.js';
import { generateKeyPair } from '../../../src/crypto/keys.js';
import { isE2EError } from '../../../src/device/e2e/e2e-stream.js';
import { openUserStream } from '../../../src/device/user-stream.js';
import { MuxError } from '../../../src/errors.js';
import { streamPair } from '../../helpers/fake-opener.js';

type LogLine = Record<string, unknown>;

function failure(stream: Duplex): Promise<Error & { code?: string }> {
  return new Promise((resolve, reject) => {
    stream.once('error', resolve);
    stream.once('open', () => reject(new Error('the stream opened')));
  });
}

describe('openUserStream', () => {
  it('without a pinned key: fails with ERR_E2E_NO_DEVICE_KEY and opens nothing', async () => {
    const opened: string[] = [];
    const stream = openUserStream(
      { device: 'build1', service: 'ssh' },
      {
        pins: new Map(),
        staticKeyPair: generateKeyPair(),
        open: (t) => {
          opened.push(t);
          return streamPair()[0];
        },
      },
    );
    const err = await failure(stream);
    expect(err.code).toBe('ERR_E2E_NO_DEVICE_KEY');
    expect(isE2EError(err)).toBe(true);
    expect(opened).toEqual([]);
  });

  it('with a pinned key: opens DEVICE:SERVICE through the outer opener', () => {
    const opened: string[] = [];
    const stream = openUserStream(
      { device: 'build1', service: 'ssh' },
      {
        pins: new Map([['build1', generateKeyPair().publicKey]]),
        staticKeyPair: generateKeyPair(),
        open: (t) => {
          opened.push(t);
          const [near, far] = streamPair();
          far.on('error', () => {});
          return near;
        },
      },
    );
    stream.on('error', () => {});
    stream.destroy();
    expect(opened).toEqual(['build1:ssh']);
  });
});

describe('isE2EError', () => {
  it('is true for the device layer failures only', () => {
    expect(isE2EError(new MuxError('ERR_MUX_STREAM_RESET', 'reset'))).toBe(false);
    expect(isE2EError(Object.assign(new Error('look-alike'), { code: 'ERR_E2E_HANDSHAKE' }))).toBe(false);
  });
});

describe('ClientDaemon.openStream to a device service', () => {
  function daemon(): { client: ClientDaemon; lines: LogLine[] } {
    const lines: LogLine[] = [];
    const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
    const client = new ClientDaemon({
      serverUrls: ['ws://127.0.0.1:9/'],
      serverPublicKeys: [generateKeyPair().publicKey],
      staticKeyPair: generateKeyPair(),
      forwards: [],
      socks: [],
      reconnectMinMs: 1_000,
      reconnectMaxMs: 1_000,
      connectWaitMs: 1_000,
      sessionLimits: {},
      muxLimits: {},
      logger,
    });
    return { client, lines };
  }

  it.each([
    ['build1:ssh', 'ERR_E2E_NO_DEVICE_KEY'],
    ['bad/name:ssh', 'ERR_DEVICE_TARGET'],
  ])('%s fails before anything is sent, logged as stream.refused with code %s', async (target, code) => {
    const { client, lines } = daemon();
    const err = await failure(client.openStream(target));
    expect(err.code).toBe(code);
    expect(lines.filter((l) => l.event === 'stream.refused')).toEqual([expect.objectContaining({ target, code })]);
  });
});
