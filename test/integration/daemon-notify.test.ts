import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stopAll, twoway } from '../helpers/processes.js';
import { TestTunnel } from '../helpers/tunnel.js';
import { startFakeServiceManager, type FakeServiceManager } from '../helpers/fake-service-manager.js';
import { waitUntil } from '../helpers/wait.js';

// The notifications a reload sends must reach the service manager in order: RELOADING=1, then
// READY=1. Each goes through its own systemd-notify process; sent concurrently, a READY=1 that
// overtakes RELOADING=1 leaves systemd in "reloading" for good, and the next `systemctl reload`
// hangs (seen under load in test/system/run.sh on Debian 12). Here the real systemd-notify talks
// to a datagram socket (python3: Node has no unix datagram sockets) standing in for systemd; a
// wrapper in front of it holds RELOADING=1 back a little, as a busy machine may, so that a daemon
// that does not wait for it sends READY=1 first.
const REAL_NOTIFY = spawnSync('sh', ['-c', 'command -v systemd-notify'], { encoding: 'utf8' }).stdout.trim();

describe('systemd notifications of a reload', () => {
  const tunnels: TestTunnel[] = [];
  const managers: FakeServiceManager[] = [];
  afterEach(async () => {
    await stopAll();
    for (const m of managers.splice(0)) m.stop();
    for (const t of tunnels.splice(0)) await t.stop();
  });

  it('SIGHUP sends RELOADING=1 and then READY=1, in that order, even when RELOADING=1 is slow to go out', async () => {
    expect(REAL_NOTIFY, 'systemd-notify is installed (.ci/install-deps: systemd)').not.toBe('');
    const tunnel = new TestTunnel();
    tunnels.push(tunnel);
    const shim = tunnel.path('bin');
    fs.mkdirSync(shim);
    fs.writeFileSync(path.join(shim, 'systemd-notify'), `#!/bin/sh\ncase "$*" in *RELOADING=1*) sleep 1 ;; esac\nexec ${REAL_NOTIFY} "$@"\n`, { mode: 0o755 });
    const socket = tunnel.path('notify.sock');
    const manager = await startFakeServiceManager(socket, 30);
    managers.push(manager);
    const messages = (): string[] => manager.messages();

    fs.writeFileSync(
      tunnel.path('server.toml'),
      '[server]\nlisten = "127.0.0.1:0"\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\ncontrol_socket = "server.sock"\n',
    );
    const server = twoway(['server', '--config', tunnel.path('server.toml')], {
      env: { ...process.env, NOTIFY_SOCKET: socket, PATH: `${shim}:${process.env.PATH ?? '/usr/bin:/bin'}` },
    });
    await server.waitForEvent('daemon.ready');
    await waitUntil(() => messages().some((m) => m.startsWith('READY=1')), 'READY=1 at start', 15_000);

    server.kill('SIGHUP');
    await server.waitForEvent('config.reload');
    await waitUntil(
      () => messages().filter((m) => m.startsWith('READY=1')).length >= 2 && messages().includes('RELOADING=1'),
      'RELOADING=1 and a second READY=1',
      15_000,
    );
    const states = messages()
      .map((m) => m.split('\n')[0])
      .filter((m) => m === 'RELOADING=1' || m === 'READY=1');
    expect(states).toEqual(['READY=1', 'RELOADING=1', 'READY=1']);
  }, 40_000);
});
