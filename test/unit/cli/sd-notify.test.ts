import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sdNotify, watchdogIntervalMs } from '../../../src/cli/sd-notify.js';
import { startFakeServiceManager, type FakeServiceManager } from '../../helpers/fake-service-manager.js';
import { waitUntil } from '../../helpers/wait.js';
import { tempDir } from '../../helpers/temp-dir.js';

describe('sdNotify', () => {
  const managers: FakeServiceManager[] = [];
  const dirs: string[] = [];
  afterEach(() => {
    for (const m of managers.splice(0)) m.stop();
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('resolves false without doing anything when NOTIFY_SOCKET is unset', async () => {
    expect(await sdNotify(undefined, 'READY=1', { command: '/nonexistent/never-run' })).toBe(false);
    expect(await sdNotify('', 'READY=1')).toBe(false);
  });

  it('throws on a malformed state', () => {
    expect(() => sdNotify('/x', 'ready')).toThrow(TypeError);
    expect(() => sdNotify('/x', '--ready')).toThrow(TypeError);
    expect(() => sdNotify('/x', '')).toThrow(TypeError);
  });

  it('resolves false when the tool is missing or fails', async () => {
    expect(await sdNotify('/run/nothing.sock', 'READY=1', { command: '/nonexistent/systemd-notify' })).toBe(false);
    expect(await sdNotify('/run/nothing.sock', 'READY=1', { command: 'false' })).toBe(false);
  });

  it('delivers READY=1 and STATUS to a datagram socket via systemd-notify', async () => {
    const dir = tempDir('notify');
    dirs.push(dir);
    const socketPath = path.join(dir, 'notify.sock');
    const manager = await startFakeServiceManager(socketPath, 20);
    managers.push(manager);

    const delivered = await sdNotify(socketPath, 'READY=1\nSTATUS=listening on 127.0.0.1:8443');
    expect(delivered).toBe(true);
    // The datagram was printed before the barrier fd was closed, so both lines are (nearly) here.
    await waitUntil(() => manager.messages().length >= 2, 'the datagram and the barrier', 5_000);
    const messages = manager.messages();
    expect(messages[0]).toBe('READY=1\nSTATUS=listening on 127.0.0.1:8443');
    expect(messages[1]).toBe('BARRIER=1');
  }, 20_000);
});

describe('watchdogIntervalMs', () => {
  it('is half of WATCHDOG_USEC for this process, else undefined', () => {
    expect(watchdogIntervalMs('30000000', undefined, 42)).toBe(15_000);
    expect(watchdogIntervalMs('30000000', '42', 42)).toBe(15_000);
    expect(watchdogIntervalMs('30000000', '43', 42)).toBeUndefined();
    expect(watchdogIntervalMs(undefined, undefined)).toBeUndefined();
    expect(watchdogIntervalMs('0', undefined)).toBeUndefined();
    expect(watchdogIntervalMs('abc', undefined)).toBeUndefined();
  });
});
