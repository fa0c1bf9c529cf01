import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sdNotify, watchdogIntervalMs } from '../../../src/daemon/sd-notify.js';

/**
 * A fake service manager: a unix datagram socket (python3, since Node has none) that prints each
 * datagram as a JSON line and closes any passed fds, which is how systemd completes the
 * BARRIER=1 handshake systemd-notify waits for.
 */
const FAKE_MANAGER = `
import json, socket, sys, os, array
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
print("listening", flush=True)
for _ in range(20):
    data, anc, _f, _a = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    print(json.dumps(data.decode()), flush=True)
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i"); fds.frombytes(payload[: len(payload) - len(payload) % 4])
            for fd in fds: os.close(fd)
`;


async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('sdNotify', () => {
  const children: ChildProcess[] = [];
  const dirs: string[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill();
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
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twoway-notify-'));
    dirs.push(dir);
    const socketPath = path.join(dir, 'notify.sock');
    const manager = spawn('python3', ['-c', FAKE_MANAGER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(manager);
    const lines: string[] = [];
    manager.stdout!.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
    await until(() => lines.includes('listening'), 10_000);

    const delivered = await sdNotify(socketPath, 'READY=1\nSTATUS=listening on 127.0.0.1:8443');
    expect(delivered).toBe(true);
    // The datagram was printed before the barrier fd was closed, so both lines are (nearly) here.
    await until(() => lines.length >= 3, 5_000);
    const messages = lines.filter((l) => l !== 'listening').map((l) => JSON.parse(l) as string);
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
