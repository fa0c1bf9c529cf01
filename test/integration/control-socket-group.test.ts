/**
 * The system client unit's control socket for a group (issue 12 item 4): `control_socket_mode`
 * and `control_socket_group` applied by the real daemon, run as a service uid (65534) in a
 * RuntimeDirectory-like folder (its own, mode 0750, inside a root-only folder like /run). A
 * member of the group uses it (status, and `twoway connect` as an ssh ProxyCommand would); a
 * non-member is refused by the kernel. The uids are numeric (setpriv), the group one of the host's.
 */
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey } from '../../src/crypto/keys.js';
import { Proc, TWOWAY_BIN, runTwoway } from '../helpers/processes.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import { tempDir } from '../helpers/temp-dir.js';

const SERVICE_UID = 65534;
const MEMBER_UID = 65533;
const OTHER_UID = 65532;
/** A group that exists on every Debian host and that none of the uids above has by default. */
const GROUP = ['users', 'staff']
  .map((name) => ({
    name,
    line: fs
      .readFileSync('/etc/group', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${name}:`)),
  }))
  .find((g) => g.line)!;
const GID = Number(GROUP.line!.split(':')[2]);

let tunnel: TestTunnel;
let echo: { server: net.Server; port: number };
let base: string;
let socketPath: string;
let daemon: Proc;

/** bin/twoway as `uid`, with `groups` as its supplementary groups (none when empty). */
function asUser(uid: number, groups: number[], args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = new Proc(
    'setpriv',
    [`--reuid=${uid}`, `--regid=${uid}`, groups.length ? `--groups=${groups.join(',')}` : '--clear-groups', process.execPath, TWOWAY_BIN, ...args],
    {
      env: { ...process.env, HOME: base, NO_COLOR: '1' },
    },
  );
  proc.child.stdin?.end(input);
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  return proc.exited.then(({ code }) => {
    clearTimeout(timer);
    return { code, stdout: proc.stdout, stderr: proc.stderr };
  });
}

beforeAll(async () => {
  echo = await startEchoServer();
  tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${echo.port}`] }] });
  await tunnel.startServer();
  // base plays /run (root's, 0755); base/twoway the unit's RuntimeDirectory (service uid, the group, 0750).
  base = tempDir('group');
  fs.chmodSync(base, 0o755);
  const runDir = path.join(base, 'twoway');
  fs.mkdirSync(runDir, { mode: 0o750 });
  fs.chownSync(runDir, SERVICE_UID, GID);
  socketPath = path.join(runDir, 'client-work.sock');
  const etc = path.join(base, 'etc');
  fs.mkdirSync(etc, { mode: 0o755 });
  fs.copyFileSync(tunnel.path('alice.key'), path.join(etc, 'alice.key'));
  fs.chownSync(path.join(etc, 'alice.key'), SERVICE_UID, SERVICE_UID);
  fs.writeFileSync(
    path.join(etc, 'client-work.toml'),
    `[client]\nserver_url = "${tunnel.url}"\nserver_public_key = "${encodeKey(tunnel.serverKey.publicKey)}"\nprivate_key_file = "alice.key"\n` +
      `control_socket = ${JSON.stringify(socketPath)}\ncontrol_socket_mode = "0660"\ncontrol_socket_group = "${GROUP.name}"\n`,
  );
  daemon = new Proc(
    'setpriv',
    [`--reuid=${SERVICE_UID}`, `--regid=${SERVICE_UID}`, `--groups=${GID}`, process.execPath, TWOWAY_BIN, 'client', '-c', path.join(etc, 'client-work.toml')],
    {
      env: { ...process.env, NO_COLOR: '1' },
    },
  );
  await daemon.waitForEvent('daemon.ready');
  await daemon.waitForEvent('session.open');
  await tunnel.server!.waitForEvent('auth.accepted');
}, 30_000);

afterAll(async () => {
  await daemon?.stop();
  await tunnel?.stop();
  echo?.server.close();
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

describe('control_socket_mode and control_socket_group', () => {
  it('the socket has the mode and group asked for', () => {
    const st = fs.statSync(socketPath);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.gid).toBe(GID);
    expect(st.uid).toBe(SERVICE_UID);
  });

  it('a member of the group can ask for status and connect through the daemon (ssh ProxyCommand)', async () => {
    const status = await asUser(MEMBER_UID, [GID], ['status', '--socket', socketPath, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ role: 'client', state: 'connected' });
    const sessions = tunnel.server!.logLines().filter((l) => l.event === 'auth.accepted').length;
    const r = await asUser(MEMBER_UID, [GID], ['connect', '--socket', socketPath, `127.0.0.1:${echo.port}`], 'through the unit\n');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('through the unit\n');
    expect(tunnel.server!.logLines().filter((l) => l.event === 'auth.accepted').length).toBe(sessions);
  });

  it('a uid outside the group is refused by the kernel (exit 6, permission denied)', async () => {
    const r = await asUser(OTHER_UID, [], ['status', '--socket', socketPath]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/permission denied/);
  });

  it('by default the socket is 0600', async () => {
    await tunnel.startClient('alice');
    expect(fs.statSync(tunnel.path('client-alice.sock')).mode & 0o777).toBe(0o600);
  });

  it.each([
    ['control_socket_mode = "0666"', /control_socket_mode: must be "0600" \(only this user\) or "0660"/],
    ['control_socket_mode = 438', /control_socket_mode: must be "0600"/],
    ['control_socket_mode = "rw"', /control_socket_mode: expected an octal mode such as "0660"/],
    ['control_socket_group = "twoway"', /control_socket_group: has no effect with control_socket_mode "0600"/],
    ['control_socket_mode = "0660"\ncontrol_socket_group = "no such group!"', /control_socket_group: expected a group name/],
  ])('check-config refuses %s (exit 3)', async (lines, message) => {
    const file = tunnel.path('bad-mode.toml');
    fs.writeFileSync(file, fs.readFileSync(tunnel.clientConfig('alice', '', lines), 'utf8'));
    tunnel.clientConfig('alice');
    const r = await runTwoway(['check-config', file]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(message);
  });

  it('a group that does not exist stops the daemon at start (exit 3), before READY', async () => {
    const file = tunnel.path('no-group.toml');
    fs.writeFileSync(
      file,
      fs
        .readFileSync(tunnel.clientConfig('alice', '', 'control_socket_mode = "0660"\ncontrol_socket_group = "twoway-no-such-group"'), 'utf8')
        .replace('client-alice.sock', 'no-group.sock'),
    );
    tunnel.clientConfig('alice');
    const r = await runTwoway(['client', '-c', file]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/control_socket_group: no group named "twoway-no-such-group" on this host/);
    expect(r.stdout).not.toMatch(/daemon\.ready/);
    expect(fs.existsSync(tunnel.path('no-group.sock'))).toBe(false);
  });
});
