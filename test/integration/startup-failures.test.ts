/**
 * Start-up failures of the real daemons (issue 12 item 2): each one exits non-zero with the reason
 * on stderr, never says READY=1 to the service manager, never accepts a session meanwhile, and
 * leaves nothing behind (no control socket, no listener). The service manager is a datagram
 * socket of our own named by NOTIFY_SOCKET (systemd-notify delivers to it, as under systemd).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey } from '../../src/crypto/keys.js';
import { twoway, type Proc } from '../helpers/processes.js';
import { freePort } from '../helpers/ports.js';
import { TestTunnel } from '../helpers/tunnel.js';
import { startFakeServiceManager, type FakeServiceManager } from '../helpers/fake-service-manager.js';
import { waitUntil } from '../helpers/wait.js';
import { tempDir } from '../helpers/temp-dir.js';

let tunnel: TestTunnel;
let manager: FakeServiceManager | undefined;
let notifySocket: string;
let notifyDir: string;
let notified: string[] = [];
const started: Proc[] = [];

beforeAll(async () => {
  // carol's key is used only by the clients that must fail: any handshake with it would show.
  tunnel = new TestTunnel({
    peers: [
      { name: 'alice', allow: [] },
      { name: 'carol', allow: [] },
    ],
  });
  await tunnel.startServer();
  // Its own folder that every uid may enter: one test runs the daemon as uid 65534.
  notifyDir = tempDir('notify', '/tmp');
  fs.chmodSync(notifyDir, 0o755);
  notifySocket = path.join(notifyDir, 'notify.sock');
  manager = await startFakeServiceManager(notifySocket);
  notified = manager.notified;
}, 30_000);

afterEach(async () => {
  // Only what the tests started (the tunnel's server stays up for the next test).
  await Promise.all(started.splice(0).map((p) => p.stop()));
  manager?.clear();
});

afterAll(async () => {
  manager?.stop();
  await tunnel?.stop();
  if (notifyDir) fs.rmSync(notifyDir, { recursive: true, force: true });
});

/**
 * Starts a daemon under our service manager, meanwhile trying TCP connections to `probePort`
 * (where its WebSocket listener would be) until it exits. Resolves with how it ended.
 */
async function startFailing(
  args: string[],
  probePort?: number,
  spawnOptions: Parameters<typeof twoway>[1] = {},
): Promise<{ code: number | null; stderr: string; accepted: number; proc: Proc }> {
  const proc = twoway(args, { ...spawnOptions, env: { NOTIFY_SOCKET: notifySocket, ...(spawnOptions.env ?? {}) } });
  started.push(proc);
  let accepted = 0;
  let exited = false;
  void proc.exited.then(() => (exited = true));
  const probing = (async () => {
    if (probePort === undefined) return;
    while (!exited) {
      await new Promise<void>((resolve) => {
        const s = net.connect(probePort, '127.0.0.1');
        s.once('connect', () => {
          accepted++;
          s.destroy();
          resolve();
        });
        s.once('error', () => resolve());
      });
      // Kept: paces the probe (it asks "did it ever listen?" until the daemon exits), not a wait.
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  // Bounded: a daemon that does not exit by itself is the failure this file is about.
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  const { code } = await proc.exited;
  clearTimeout(timer);
  await probing;
  return { code, stderr: proc.stderr, accepted, proc };
}

/** No READY=1 reached the service manager, and no daemon.ready line was logged. */
function expectNeverReady(proc: Proc): void {
  expect(notified.filter((m) => m.includes('READY=1'))).toEqual([]);
  expect(proc.logLines().filter((l) => l.event === 'daemon.ready')).toEqual([]);
}

function serverConfig(name: string, lines: string): string {
  const file = tunnel.path(name);
  fs.writeFileSync(file, `[server]\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\n${lines}\n`);
  return file;
}

/** A client config for `peer` (carol unless told) with `extra` lines in [client] and `listeners` after it. */
function clientConfig(name: string, extra: string, listeners = '', peer = 'carol'): string {
  const file = tunnel.path(name);
  fs.writeFileSync(
    file,
    `[client]\nserver_url = "${tunnel.url}"\nserver_public_key = "${encodeKey(tunnel.serverKey.publicKey)}"\n` +
      `private_key_file = "${peer}.key"\nreconnect_min_ms = 200\nreconnect_max_ms = 1000\n${extra}\n${listeners}\n`,
  );
  return file;
}

/** A loopback TCP port held by someone else for the duration of the test. */
async function busyPort(): Promise<{ port: number; close(): void }> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/** Handshakes the server logged for carol's key (accepted: she is on the allowlist). */
function carolHandshakes(): number {
  const carol = encodeKey(tunnel.peers.find((p) => p.name === 'carol')!.key.publicKey);
  return tunnel.server!.logLines().filter((l) => (l.event === 'auth.accepted' || l.event === 'auth.refused') && l.fingerprint === carol).length;
}

describe('the service manager', () => {
  it('hears READY=1 from a daemon that starts (so its silence below means something)', async () => {
    const file = clientConfig('good.toml', 'control_socket = "good.sock"', '', 'alice');
    const proc = twoway(['client', '-c', file], { env: { NOTIFY_SOCKET: notifySocket } });
    started.push(proc);
    await waitUntil(() => notified.some((m) => m.startsWith('READY=1')), 'READY=1 from a good start', 10_000, proc.exited);
  });
});

describe('server start-up failures', () => {
  it('a second server whose control_socket is in use exits 1 before READY=1 and never listens', async () => {
    const port = await freePort();
    const file = serverConfig('second.toml', `listen = "127.0.0.1:${port}"\ncontrol_socket = "server.sock"`);
    const r = await startFailing(['server', '-c', file], port);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^twoway: cannot start: control_socket .*server\.sock: .*in use by a running daemon\n$/);
    expect(r.accepted).toBe(0);
    expectNeverReady(r.proc);
    // The first server's socket is untouched.
    expect(fs.statSync(tunnel.path('server.sock')).isSocket()).toBe(true);
  });

  it('metrics_listen on a busy port exits 1 before READY=1, never listens, and removes its control socket', async () => {
    const port = await freePort();
    const busy = await busyPort();
    try {
      const file = serverConfig('metrics.toml', `listen = "127.0.0.1:${port}"\ncontrol_socket = "metrics.sock"\nmetrics_listen = "127.0.0.1:${busy.port}"`);
      const r = await startFailing(['server', '-c', file], port);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toBe(`twoway: cannot start: metrics_listen 127.0.0.1:${busy.port}: address already in use\n`);
      expect(r.accepted).toBe(0);
      expectNeverReady(r.proc);
      expect(fs.existsSync(tunnel.path('metrics.sock'))).toBe(false);
    } finally {
      busy.close();
    }
  });

  it('a busy listen port exits 1 and closes its control socket and metrics listener', async () => {
    const busy = await busyPort();
    const metricsPort = await freePort();
    try {
      const file = serverConfig('busy.toml', `listen = "127.0.0.1:${busy.port}"\ncontrol_socket = "busy.sock"\nmetrics_listen = "127.0.0.1:${metricsPort}"`);
      const r = await startFailing(['server', '-c', file]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toBe(`twoway: cannot start: listen 127.0.0.1:${busy.port}: address already in use\n`);
      expectNeverReady(r.proc);
      expect(fs.existsSync(tunnel.path('busy.sock'))).toBe(false);
    } finally {
      busy.close();
    }
  });

  it('an unusable TLS certificate is a config error (exit 3) before anything listens', async () => {
    const port = await freePort();
    fs.writeFileSync(tunnel.path('bad.crt'), 'not a certificate\n');
    tunnel.writeSecret('bad.pem', 'not a key either');
    const file = serverConfig('tls.toml', `listen = "127.0.0.1:${port}"\ncontrol_socket = "tls.sock"\ntls_cert_file = "bad.crt"\ntls_key_file = "bad.pem"`);
    const r = await startFailing(['server', '-c', file], port);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/^twoway: tls_cert_file .*bad\.crt \/ tls_key_file .*bad\.pem: not a usable certificate and key \(.+\)\n$/);
    expect(r.stderr).not.toMatch(/not a key either/);
    expect(r.accepted).toBe(0);
    expectNeverReady(r.proc);
    expect(fs.existsSync(tunnel.path('tls.sock'))).toBe(false);
  });
});

describe('client start-up failures', () => {
  it('a forward on a busy port exits 1 before READY=1, without a session, and closes the other listeners', async () => {
    const busy = await busyPort();
    const free = await freePort();
    try {
      const file = clientConfig(
        'busy-forward.toml',
        'control_socket = "busy-forward.sock"',
        `[[forward]]\nlisten = "127.0.0.1:${free}"\ntarget = "127.0.0.1:1"\n[[socks]]\nlisten = "127.0.0.1:${busy.port}"\n`,
      );
      const r = await startFailing(['client', '-c', file], free);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toBe(`twoway: cannot start: local listener: socks 127.0.0.1:${busy.port}: address already in use\n`);
      expectNeverReady(r.proc);
      expect(r.proc.logLines().filter((l) => l.event === 'session.open' || l.event === 'connect.failed')).toEqual([]);
      expect(carolHandshakes()).toBe(0);
      expect(fs.existsSync(tunnel.path('busy-forward.sock'))).toBe(false);
    } finally {
      busy.close();
    }
  });

  it('a control socket in use by a running client exits 1 before READY=1 and without a session', async () => {
    const first = await tunnel.startClient('alice');
    started.push(first);
    const file = clientConfig('second-client.toml', 'control_socket = "client-alice.sock"');
    const r = await startFailing(['client', '-c', file]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^twoway: cannot start: control_socket .*client-alice\.sock: .*in use by a running daemon\n$/);
    expectNeverReady(r.proc);
    expect(carolHandshakes()).toBe(0);
    expect(first.child.exitCode).toBe(null);
  });

  it('a control socket directory the user cannot write exits 1 (permission denied) before READY=1', async () => {
    // As uid 65534 (root writes everywhere): its own key and config in a folder it may read, the
    // socket in a root-owned folder of mode 0755.
    const home = tempDir('nobody', '/tmp');
    try {
      fs.chmodSync(home, 0o755);
      fs.mkdirSync(path.join(home, 'locked'), { mode: 0o755 });
      fs.copyFileSync(tunnel.path('carol.key'), path.join(home, 'carol.key'));
      fs.chownSync(path.join(home, 'carol.key'), 65534, 65534);
      const file = path.join(home, 'client.toml');
      fs.writeFileSync(
        file,
        `[client]\nserver_url = "${tunnel.url}"\nserver_public_key = "${encodeKey(tunnel.serverKey.publicKey)}"\n` +
          `private_key_file = "carol.key"\ncontrol_socket = "locked/client.sock"\n`,
      );
      const r = await startFailing(['client', '-c', file], undefined, { uid: 65534, gid: 65534 });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toBe(`twoway: cannot start: control_socket ${path.join(home, 'locked', 'client.sock')}: permission denied\n`);
      expectNeverReady(r.proc);
      expect(carolHandshakes()).toBe(0);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
