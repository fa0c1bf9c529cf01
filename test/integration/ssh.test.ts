/**
 * Real OpenSSH through the tunnel: a private sshd on a high loopback port as the target, the real
 * ssh and scp clients as the application, through `twoway connect` as ProxyCommand (standalone
 * and through the client daemon) and through a local forward.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshd, type TestSshd } from '../helpers/sshd.js';
import { TestTunnel } from '../helpers/tunnel.js';
import { TWOWAY_BIN } from '../helpers/processes.js';
import { waitUntil } from '../helpers/wait.js';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const user = os.userInfo().username;

let tunnel: TestTunnel;
let sshd: TestSshd;
let sshPort: number;
let forwardPort: number;
let dir: string;

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

const sshArgs = (extra: string[]): string[] => sshd.clientArgs(extra);

function proxyCommand(configFile: string): string {
  return `ProxyCommand=${process.execPath} ${TWOWAY_BIN} connect --config ${configFile} %h:%p`;
}

beforeAll(async () => {
  dir = tempDir('ssh');
  sshd = await startSshd(dir);
  sshPort = sshd.port;

  tunnel = new TestTunnel({
    peers: [
      { name: 'alice', allow: [`127.0.0.1:${sshPort}`] },
      { name: 'bob', allow: [`127.0.0.1:${sshPort}`] },
    ],
  });
  await tunnel.startServer();
  const client = await tunnel.startClient('alice', `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${sshPort}"\n`);
  forwardPort = TestTunnel.listenerPorts(client)[0]!;
  // bob has no daemon: his `twoway connect` makes a session of its own.
  tunnel.clientConfig('bob', '');
  const big = randomBytes(6 * 1024 * 1024);
  fs.writeFileSync(path.join(dir, 'big.bin'), big);
}, 60_000);

afterAll(async () => {
  await tunnel?.stop();
  sshd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('OpenSSH through twoway', () => {
  it('runs a command with `twoway connect` as ProxyCommand (standalone session)', async () => {
    const { stdout } = await run(
      'ssh',
      [
        ...sshArgs(['-o', proxyCommand(tunnel.path('client-bob.toml'))]),
        '-p',
        String(sshPort),
        `${user}@127.0.0.1`,
        'echo through-the-tunnel; echo $SSH_CONNECTION',
      ],
      { timeout: 30_000 },
    );
    expect(stdout).toContain('through-the-tunnel');
    // sshd sees the connection coming from the server daemon on loopback.
    expect(stdout).toMatch(/^127\.0\.0\.1 \d+ 127\.0\.0\.1 \d+$/m);
  });

  it('pipes a file through ssh stdin and gets its sha256 back (half-close), via the client daemon', async () => {
    const { stdout } = await run(
      'bash',
      [
        '-c',
        `ssh ${sshArgs(['-o', `'${proxyCommand(tunnel.path('client-alice.toml'))}'`]).join(' ')} -p ${sshPort} ${user}@127.0.0.1 sha256sum < ${path.join(dir, 'big.bin')}`,
      ],
      { timeout: 60_000 },
    );
    expect(stdout.split(' ')[0]).toBe(sha256File(path.join(dir, 'big.bin')));
  });

  it("ssh's end of a session (stdin closed, then SIGHUP to the ProxyCommand) is a clean close through the daemon", async () => {
    const server = tunnel.server!;
    const closes = server.logLines().filter((l) => l.event === 'stream.close').length;
    const sessions = server.logLines().filter((l) => l.event === 'auth.accepted').length;
    const { stdout, stderr } = await run(
      'ssh',
      [...sshArgs(['-o', proxyCommand(tunnel.path('client-alice.toml'))]), '-p', String(sshPort), `${user}@127.0.0.1`, 'echo ended-cleanly'],
      { timeout: 30_000 },
    );
    expect(stdout).toBe('ended-cleanly\n');
    // Nothing from twoway connect (ssh passes its stderr through).
    expect(stderr).not.toMatch(/twoway/);
    await waitUntil(() => server.logLines().filter((l) => l.event === 'stream.close').length > closes, 'the stream.close line');
    expect(
      server
        .logLines()
        .filter((l) => l.event === 'stream.close')
        .slice(closes),
    ).toMatchObject([{ target: `127.0.0.1:${sshPort}`, how: 'closed' }]);
    expect(server.logLines().filter((l) => l.event === 'stream.reset')).toEqual([]);
    expect(server.logLines().filter((l) => l.event === 'auth.accepted').length).toBe(sessions);
  });

  it('copies a file up and back down with scp through a local forward', async () => {
    const scp = (args: string[]): Promise<unknown> => run('scp', [...sshArgs(['-P', String(forwardPort)]), ...args], { timeout: 60_000 });
    const remote = path.join(dir, 'uploaded.bin');
    await scp([path.join(dir, 'big.bin'), `${user}@127.0.0.1:${remote}`]);
    expect(sha256File(remote)).toBe(sha256File(path.join(dir, 'big.bin')));
    const back = path.join(dir, 'downloaded.bin');
    await scp([`${user}@127.0.0.1:${remote}`, back]);
    expect(sha256File(back)).toBe(sha256File(path.join(dir, 'big.bin')));
  });

  it('a ProxyCommand to a target not on the allowlist fails with a clear message and exit status', async () => {
    const result = await run(process.execPath, [TWOWAY_BIN, 'connect', '--config', tunnel.path('client-bob.toml'), '127.0.0.1:1'], { timeout: 30_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/^twoway: .*not permitted/m);
  });
});
