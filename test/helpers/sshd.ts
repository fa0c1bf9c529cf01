/**
 * A private OpenSSH server on loopback for the tests that carry real ssh through the tunnel: its
 * own host key, one client key in authorized_keys, no PAM, no passwords, in a folder of its own.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './ports.js';
import { waitUntil } from './wait.js';

const SSHD = fs.existsSync('/usr/sbin/sshd') ? '/usr/sbin/sshd' : 'sshd';

export interface TestSshd {
  readonly port: number;
  readonly process: ChildProcess;
  /** The client's private key (its public half is the one authorized key). */
  readonly identityFile: string;
  /** ssh options that use that key and a known_hosts file inside `dir`, with no user config. */
  clientArgs(extra?: readonly string[], strictHostKeyChecking?: 'accept-new' | 'no'): string[];
  stop(): void;
}

/** Resolves with the first bytes `port` sends, or undefined when nothing answers there. */
function banner(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(2_000, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.destroy();
      resolve(chunk.toString('latin1'));
    });
    socket.once('error', () => resolve(undefined));
    socket.once('close', () => resolve(undefined));
  });
}

/** Starts sshd in `dir` (which must exist) on a free loopback port and waits until it greets. */
export async function startSshd(dir: string): Promise<TestSshd> {
  const identityFile = path.join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_ed25519')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', identityFile]);
  fs.copyFileSync(`${identityFile}.pub`, path.join(dir, 'authorized_keys'));
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation directory
  // freePort() is reserved for this process; should some other program still hold it, sshd exits
  // at once and the next port is tried.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    fs.writeFileSync(
      path.join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${path.join(dir, 'host_ed25519')}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'PermitRootLogin prohibit-password',
        'StrictModes no',
        'UsePAM no',
        'Subsystem sftp internal-sftp',
        '',
      ].join('\n'),
    );
    const child = spawn(SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let greeting: string | undefined;
    try {
      await waitUntil(async () => (greeting = await banner(port)) !== undefined, `sshd to greet on ${port}`, 10_000, exited);
    } catch (err) {
      child.kill('SIGTERM');
      if (child.exitCode !== null && attempt < 3) continue;
      throw new Error(`${(err as Error).message}\n${stderr}`, { cause: err });
    }
    // The check that the one listening is ours: it is alive and it speaks SSH.
    if (child.exitCode !== null || !greeting!.startsWith('SSH-2.0-'))
      throw new Error(`port ${port} answered ${JSON.stringify(greeting)}, not our sshd\n${stderr}`);
    return {
      port,
      process: child,
      identityFile,
      clientArgs: (extra = [], strictHostKeyChecking = 'accept-new') => [
        '-F',
        '/dev/null',
        '-i',
        identityFile,
        '-o',
        `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`,
        '-o',
        `StrictHostKeyChecking=${strictHostKeyChecking}`,
        '-o',
        'BatchMode=yes',
        '-o',
        'ConnectTimeout=15',
        ...extra,
      ],
      stop: () => child.kill('SIGTERM'),
    };
  }
}
