/**
 * `twoway demo`: a working tunnel on built-in defaults. Throwaway keys, a real server and client
 * daemon started from this package's bin/, a small echo service as the target, data pushed both
 * ways through a forwarded port and checked, then a report of what happened. The demo peer
 * must verify its user with TOTP: its first stream is refused (`unverified`), the demo enrols
 * a secret, logs in with the code it computes (as `twoway login --code` would), and the data
 * then flows over the verified session.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { writeSecretFile } from '../config/key-file.js';
import { controlRequest } from '../control/control-client.js';
import { encodeKey, fingerprint, generateKeyPair } from '../crypto/keys.js';
import type { ServerStatus } from '../server/server-daemon.js';
import { enrolTotp, readTotpEntry, totpOf } from '../verify/totp-secrets.js';
import { CliError } from './fail.js';
import { TWOWAY_BIN, daemonNodeFlags } from './daemon-node-flags.js';

const DEMO_BYTES = 4 * 1024 * 1024;
const STEP_TIMEOUT_MS = 15_000;

interface Daemon {
  readonly name: string;
  readonly child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  stderr: string;
}

function startDaemon(name: string, args: string[]): Daemon {
  const child = spawn(process.execPath, [...daemonNodeFlags(), TWOWAY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const d: Daemon = { name, child, lines: [], stderr: '' };
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      try {
        d.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (d.stderr += chunk.toString('utf8')));
  return d;
}

async function waitForEvent(d: Daemon, event: string, match: (l: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    const line = d.lines.find((l) => l.event === event && match(l));
    if (line) return line;
    if (d.child.exitCode !== null) throw new CliError(`the ${d.name} daemon exited (${d.child.exitCode}) before '${event}': ${lastWords(d)}`);
    if (Date.now() > deadline) throw new CliError(`the ${d.name} daemon did not report '${event}' within ${STEP_TIMEOUT_MS} ms: ${lastWords(d)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function lastWords(d: Daemon): string {
  const last = d.lines
    .slice(-3)
    .map((l) => String(l.msg))
    .join(' | ');
  return (d.stderr.trim() || last || 'no output').slice(-500);
}

async function stopDaemon(d: Daemon): Promise<number | null> {
  if (d.child.exitCode !== null) return d.child.exitCode;
  const exited = new Promise<number | null>((resolve) => d.child.once('exit', (code) => resolve(code)));
  d.child.kill('SIGTERM');
  const timer = setTimeout(() => d.child.kill('SIGKILL'), 5_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/** The target: an echo service on loopback. */
function startEcho(): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** Opens a connection to the forward and waits until the client closes it (a refused stream). */
function refusedThrough(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CliError(`the unverified stream was not refused within ${STEP_TIMEOUT_MS} ms`));
    }, STEP_TIMEOUT_MS);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Sends `payload` through the forward and reads the echo; resolves with the echoed digest. */
function pushThrough(port: number, payload: Buffer): Promise<{ digest: string; received: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const socket = net.connect(port, '127.0.0.1');
    const hash = createHash('sha256');
    let received = 0;
    const timer = setTimeout(() => socket.destroy(new Error(`no echo within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
    socket.on('data', (c: Buffer) => {
      hash.update(c);
      received += c.length;
      if (received >= payload.length) socket.end();
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(new CliError(`pushing data through the tunnel failed: ${err.message}`));
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ digest: hash.digest('hex'), received, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    });
    socket.write(payload);
  });
}

export async function demoCommand(stdout: NodeJS.WritableStream): Promise<void> {
  const out = (line = ''): void => void stdout.write(`${line}\n`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twoway-demo-'));
  const daemons: Daemon[] = [];
  let echo: net.Server | undefined;
  try {
    const serverKey = generateKeyPair();
    const clientKey = generateKeyPair();
    writeSecretFile(path.join(dir, 'server.key'), Buffer.from(encodeKey(serverKey.privateKey) + '\n'));
    writeSecretFile(path.join(dir, 'client.key'), Buffer.from(encodeKey(clientKey.privateKey) + '\n'));
    echo = await startEcho();
    const echoPort = (echo.address() as net.AddressInfo).port;
    out(`twoway demo: throwaway keys and configs in ${dir}`);
    out(`  server key   ${fingerprint(serverKey.publicKey)}`);
    out(`  client key   ${fingerprint(clientKey.publicKey)}`);
    out(`  target       echo service on 127.0.0.1:${echoPort}`);

    fs.writeFileSync(
      path.join(dir, 'peers.toml'),
      `[[peer]]\nname = "demo-client"\npublic_key = "${encodeKey(clientKey.publicKey)}"\nallow = ["127.0.0.1:${echoPort}"]\nverify = "totp"\n`,
    );
    const totpFile = path.join(dir, 'totp.json');
    enrolTotp(totpFile, 'demo-client', 'twoway demo');
    fs.writeFileSync(
      path.join(dir, 'server.toml'),
      `[server]\nlisten = "127.0.0.1:0"\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\ncontrol_socket = "server.sock"\nshutdown_grace_ms = 2000\n`,
    );
    const server = startDaemon('server', ['server', '--config', path.join(dir, 'server.toml')]);
    daemons.push(server);
    const listening = await waitForEvent(server, 'listen');
    const url = `ws://127.0.0.1:${String(listening.port)}/twoway`;
    out(`  server       ${url} (pid ${server.child.pid})`);

    fs.writeFileSync(
      path.join(dir, 'client.toml'),
      `[client]\nserver_url = "${url}"\nserver_public_key = "${encodeKey(serverKey.publicKey)}"\nprivate_key_file = "client.key"\ncontrol_socket = "client.sock"\n\n[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echoPort}"\n`,
    );
    const client = startDaemon('client', ['client', '--config', path.join(dir, 'client.toml')]);
    daemons.push(client);
    const forward = await waitForEvent(client, 'listen', (l) => l.kind === 'forward');
    await waitForEvent(client, 'session.open');
    await waitForEvent(server, 'session.open');
    out(`  client       forward 127.0.0.1:${String(forward.port)} -> 127.0.0.1:${echoPort} (pid ${client.child.pid})`);

    // User verification: refused until the person logs in; the code is computed from the enrolled secret.
    await refusedThrough(Number(forward.port));
    const refusal = await waitForEvent(client, 'stream.refused', (l) => l.reason === 'unverified');
    out(`  before login stream refused (${String(refusal.reason)}): ${String(refusal.msg).replace(/^.*\(unverified\): /, '')}`);
    const code = totpOf(readTotpEntry(totpFile, 'demo-client')!.secret).generate();
    const login = await controlRequest(path.join(dir, 'client.sock'), { cmd: 'verify', message: { method: 'totp', code } });
    const answer = (login.answer ?? {}) as Record<string, unknown>;
    if (answer.ok !== true) throw new CliError(`the demo's login was refused: ${JSON.stringify(answer).slice(0, 300)}`);
    out(
      `  login        TOTP code accepted over the session (bound to its handshake): verified as ${String(answer.identity)} until ${String(answer.expires_at)}`,
    );

    const payload = randomBytes(DEMO_BYTES);
    const sent = createHash('sha256').update(payload).digest('hex');
    const result = await pushThrough(Number(forward.port), payload);
    if (result.received !== payload.length || result.digest !== sent) {
      throw new CliError(
        `the echo came back wrong: ${result.received} of ${payload.length} bytes, sha256 ${result.digest.slice(0, 16)} instead of ${sent.slice(0, 16)}`,
      );
    }
    const mib = (payload.length / 1024 / 1024).toFixed(2);
    out(`  transfer     ${mib} MiB each way through the tunnel, sha256 ${sent.slice(0, 16)}... matches (${result.ms.toFixed(0)} ms)`);

    await waitForEvent(server, 'stream.close');
    const reply = await controlRequest(path.join(dir, 'server.sock'), { cmd: 'status' });
    const status = reply.status as ServerStatus;
    for (const s of status.sessions) {
      out(`  session      peer ${s.peer}, key ${s.fingerprint}, from ${s.remote}, ${s.bytesIn} bytes in / ${s.bytesOut} bytes out (records on the wire)`);
      if (s.verification) out(`  verified     ${s.verification.identity} by ${s.verification.method} until ${s.verification.expiresAt}`);
    }
    out('');
    out('audit log (selected lines):');
    const shown = new Set(['listen', 'session.open', 'stream.refused', 'verify.accepted', 'stream.open', 'stream.close', 'auth.accepted']);
    for (const d of daemons) {
      for (const l of d.lines) if (shown.has(String(l.event))) out(`  ${d.name.padEnd(6)} ${String(l.event).padEnd(15)} ${String(l.msg)}`);
    }
    const codes = [];
    for (const d of daemons.reverse()) codes.push(await stopDaemon(d));
    if (codes.some((c) => c !== 0)) throw new CliError(`a daemon exited with status ${codes.join(', ')} on SIGTERM`);
    out('');
    out('ok: mutual authentication, the person verified by TOTP on that session, one stream, data intact both ways; daemons stopped cleanly');
  } finally {
    for (const d of daemons) await stopDaemon(d);
    echo?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
