/**
 * The README's Quick start, run as written: its ```sh blocks are taken from README.md by heading
 * (editing the README changes this test) and run with `bash -e -o pipefail`, unchanged, in the
 * order the README gives them, by the users it names: the administrator through sudo (once as root,
 * once as an unprivileged sudoer), the employee as an unprivileged user with no sudo at all.
 *
 * Nothing on this machine changes: everything runs in a mount and network namespace this test
 * creates. /etc is a private copy (so the README's `useradd twoway` makes a temporary system user,
 * and /etc/twoway is a folder of the copy), /run and /usr/local/bin are private tmpfs mounts
 * (`twoway` there is a link to this checkout's bin/twoway, where sudo's secure_path finds it),
 * vpn.corp.example is 127.0.0.1 in the copy's /etc/hosts, and the network is the namespace's own
 * loopback. No path in a block is rewritten. What the README leaves to systemd is done the way
 * the unit does it: /run/twoway (RuntimeDirectory=, 0750 twoway) and `twoway server` as the user
 * twoway; a login session's /run/user/UID for the employee. The hand-over of server.pub and
 * alice.pub between them is a file copy.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeKey, generateKeyPair } from '../../src/crypto/keys.js';
import { Proc, REPO_ROOT, TWOWAY_BIN } from '../helpers/processes.js';
import { waitUntil } from '../helpers/wait.js';
import { tempDir } from '../helpers/temp-dir.js';

const README = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Namespaces, useradd and chown need root (the suite runs as root); sudo comes from .ci/install-deps. */
const isRoot = process.getuid?.() === 0;

/** The ```sh blocks of each `### ` heading under `## Quick start`, in order. */
function quickStartBlocks(readme: string): Map<string, string[]> {
  const blocks = new Map<string, string[]>();
  let h2 = '';
  let h3 = '';
  let body: string[] | undefined;
  for (const line of readme.split('\n')) {
    if (body !== undefined) {
      if (line === '```') {
        if (h2 === 'Quick start') blocks.set(h3, [...(blocks.get(h3) ?? []), `${body.join('\n')}\n`]);
        body = undefined;
      } else body.push(line);
      continue;
    }
    if (line.startsWith('## ')) [h2, h3] = [line.slice(3).trim(), ''];
    else if (line.startsWith('### ')) h3 = line.slice(4).trim();
    else if (line === '```sh') body = [];
  }
  return blocks;
}

function block(heading: string, index: number): string {
  const found = quickStartBlocks(README).get(heading)?.[index];
  if (found === undefined) throw new Error(`README.md: no sh block #${index + 1} under "### ${heading}" in "## Quick start"`);
  return found;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A mount + network namespace held open by a `sleep` this test started; commands enter it with nsenter. */
class Sandbox {
  readonly dir: string;
  readonly holder: Proc;
  readonly started: Proc[] = [];

  constructor() {
    this.dir = tempDir('readme');
    fs.chmodSync(this.dir, 0o755);
    this.holder = new Proc('unshare', ['--mount', '--net', '--propagation', 'private', '--', 'sleep', '300']);
  }

  /** nsenter arguments that run `argv` inside, as `user` (root when undefined) with a clean environment. */
  private enter(argv: string[], user: string | undefined, env: Record<string, string>, cwd: string): string[] {
    const vars = Object.entries({ PATH, NO_COLOR: '1', LANG: 'C.UTF-8', ...env }).map(([k, v]) => `${k}=${v}`);
    const as = user === undefined ? [] : ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups'];
    // Entering a mount namespace resets the working directory to its root: --wd sets it.
    return ['-t', String(this.holder.pid), '-m', '-n', `--wd=${cwd}`, '--', ...as, 'env', '-i', ...vars, ...argv];
  }

  /** Runs a shell script inside to completion. */
  run(script: string, options: { user?: string; cwd?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
    const proc = new Proc(
      'nsenter',
      this.enter(['bash', '-e', '-o', 'pipefail', '-c', script], options.user, options.env ?? { HOME: '/root' }, options.cwd ?? this.dir),
    );
    proc.child.stdin?.end();
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    return proc.exited.then(({ code }) => {
      clearTimeout(timer);
      return { code, stdout: proc.stdout, stderr: proc.stderr };
    });
  }

  /** Starts a long-running command inside, in a process group of its own (stopped as a group). */
  start(argv: string[], options: { user?: string; cwd?: string; env?: Record<string, string> } = {}): Proc {
    const proc = new Proc('nsenter', this.enter(argv, options.user, options.env ?? { HOME: '/root' }, options.cwd ?? this.dir), { detached: true });
    this.started.push(proc);
    return proc;
  }

  async stopStarted(): Promise<void> {
    for (const proc of this.started.reverse()) {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) continue;
      try {
        process.kill(-proc.pid, 'SIGTERM');
      } catch {
        // gone already
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-proc.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }, 5_000);
      await proc.exited;
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.stopStarted();
    await this.holder.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Must succeed: shows the script's output when it does not. */
function expectOk(r: RunResult, what: string): void {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
}

let sandbox: Sandbox | undefined;
afterEach(async () => {
  await sandbox?.close();
  sandbox = undefined;
});

describe('README Quick start, run as written in a private root', () => {
  it('runs as root, for the namespaces, useradd and chown (the suite runs as root: README, Set-up)', () => {
    expect(isRoot).toBe(true);
  });

  it("has sudo to run the administrator's blocks with (bash .ci/install-deps installs it)", () => {
    expect(spawnSync('sudo', ['-V'], { stdio: 'ignore' }).status).toBe(0);
  });

  it.each([
    ['root', undefined],
    ['an unprivileged sudoer', 'admin'],
  ])(
    'administrator as %s, employee as an unprivileged user',
    async (_label, adminUser) => {
      const box = (sandbox = new Sandbox());
      const t = box.dir;
      await waitUntil(
        () => fs.existsSync(`/proc/${box.holder.pid}/ns/net`) && fs.readlinkSync(`/proc/${box.holder.pid}/ns/net`) !== fs.readlinkSync('/proc/self/ns/net'),
        'the namespace',
      );
      // The private root: /etc copied, /run and /usr/local/bin private, the two humans.
      expectOk(
        await box.run(
          `ip link set lo up
cp -a /etc ${t}/etc && mount --bind ${t}/etc /etc
printf '127.0.0.1 vpn.corp.example\\n127.0.1.1 %s\\n' "$(hostname)" >> /etc/hosts
mount -t tmpfs -o mode=0755 tmpfs /run && mount -t tmpfs -o mode=0755 tmpfs /usr/local/bin
ln -s ${TWOWAY_BIN} /usr/local/bin/twoway
mkdir -m 0755 ${t}/home
useradd --create-home --home-dir ${t}/home/alice --shell /bin/bash alice
install -d -m 0700 -o alice -g alice /run/user/$(id -u alice)
useradd --create-home --home-dir ${t}/home/admin --shell /bin/bash admin
printf 'admin ALL=(ALL:ALL) NOPASSWD: ALL\\n' > /etc/sudoers.d/admin && chmod 0440 /etc/sudoers.d/admin
cp -r ${REPO_ROOT}/configs ${t}/home/admin/configs && chown -R admin: ${t}/home/admin/configs
id twoway 2>/dev/null && exit 9 || true`,
        ),
        'the sandbox set-up',
      );
      const adminHome = path.join(t, 'home', 'admin');
      const aliceHome = path.join(t, 'home', 'alice');
      const admin = { cwd: adminHome, ...(adminUser ? { user: adminUser, env: { HOME: adminHome } } : {}) };
      const aliceUid = fs.statSync(aliceHome).uid;
      const alice = { user: 'alice', cwd: aliceHome, env: { HOME: aliceHome, USER: 'alice', XDG_RUNTIME_DIR: `/run/user/${aliceUid}` } };

      // 1. The administrator sets up the server.
      expectOk(await box.run(block('The administrator: a server', 0), admin), "the administrator's server block");
      expect(fs.statSync(path.join(t, 'etc/twoway/peers/peers.toml')).size).toBe(0);
      const twowayUid = fs.statSync(path.join(t, 'etc/twoway/server.key')).uid;
      expect(fs.statSync(path.join(t, 'etc/twoway/server.key')).mode & 0o777).toBe(0o600);
      // What systemd does for twoway-server.service: /run/twoway, then the daemon as twoway.
      expectOk(await box.run('install -d -m 0750 -o twoway -g twoway /run/twoway'), 'RuntimeDirectory');
      const server = box.start(['twoway', 'server', '--config', '/etc/twoway/server.toml'], { user: 'twoway', env: { HOME: '/nonexistent' } });
      await server.waitForEvent('daemon.ready');

      // 2. The employee, with server.pub from the administrator.
      fs.copyFileSync(path.join(adminHome, 'server.pub'), path.join(aliceHome, 'server.pub'));
      expectOk(await box.run(block('The employee: a client', 0), alice), "the employee's init block");
      const config = path.join(aliceHome, '.config/twoway/client.toml');
      expect(fs.statSync(config).uid).toBe(aliceUid);
      expect(fs.statSync(path.join(aliceHome, '.config/twoway/client.key')).mode & 0o777).toBe(0o600);
      expect(fs.readFileSync(path.join(aliceHome, 'alice.pub'), 'utf8')).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);

      // 3. The administrator adds her, with alice.pub from the employee.
      fs.copyFileSync(path.join(aliceHome, 'alice.pub'), path.join(adminHome, 'alice.pub'));
      const added = await box.run(block('The administrator: adding, changing and removing an employee', 0), admin);
      expectOk(added, "the administrator's add block");
      expect(added.stdout).toMatch(/added; 1 peers on the allowlist\nthe running server reloaded its allowlist/);
      expect(added.stdout).toMatch(/allow: 10\.1\.0\.0\/16:22, db\.corp\.example:5432, git\.corp\.example:22/);
      const peers = fs.statSync(path.join(t, 'etc/twoway/peers/peers.toml'));
      expect([peers.uid, peers.mode & 0o777]).toEqual([twowayUid, 0o644]);

      // 4. The employee's client daemon: her session, and her status through the default socket.
      const client = box.start(['bash', '-e', '-o', 'pipefail', '-c', block('The employee: a client', 1)], alice);
      await client.waitForEvent('session.open');
      const status = await box.run('twoway status', alice);
      expectOk(status, 'twoway status as the employee');
      expect(status.stdout).toMatch(/^client: connected to ws:\/\/vpn\.corp\.example:8443\/twoway/);

      // 5. A psk for her, then the device example (its peers set keeps her session too).
      expectOk(await box.run(block('The administrator: adding, changing and removing an employee', 1), admin), 'the psk block');
      expect(fs.statSync(path.join(t, 'etc/twoway/peers/alice.psk')).mode & 0o777).toBe(0o600);
      fs.writeFileSync(path.join(adminHome, 'build1.pub'), `${encodeKey(generateKeyPair().publicKey)}\n`);
      expectOk(await box.run(block('Devices behind NAT', 0), admin), 'the devices block');
      const list = await box.run('sudo twoway peers list --json --config /etc/twoway/server.toml', admin);
      expectOk(list, 'peers list');
      const listed = JSON.parse(list.stdout) as { peers: Array<{ name: string; kind: string; devices: string[]; pskFile?: string }> };
      expect(listed.peers.map((p) => [p.name, p.kind])).toEqual([
        ['alice', 'user'],
        ['build1', 'device'],
      ]);
      expect(listed.peers[0]!.devices).toEqual(['build1:ssh']);
      expect(listed.peers[0]!.pskFile).toBe('/etc/twoway/peers/alice.psk');
      expect(server.logLines().filter((l) => l.event === 'auth.accepted')).toHaveLength(1);
      expect(server.logLines().filter((l) => l.event === 'session.closed')).toHaveLength(0);

      // 6. Revocation: her session closes.
      expectOk(await box.run(block('The administrator: adding, changing and removing an employee', 2), admin), 'the remove block');
      await server.waitForEvent('peers.changed', { peer: 'alice' });
      await client.waitForEvent('session.closed');
      expect(fs.statSync(path.join(t, 'etc/twoway/peers/peers.toml')).uid).toBe(twowayUid);
    },
    180_000,
  );
});
