// Memory per idle stream and per idle session, both daemons together (RSS from /proc).
// Starts a real server and client daemon from bin/, a sink on loopback that holds connections
// open, then opens IDLE_STREAMS connections through the client's forward and IDLE_SESSIONS
// extra sessions (each its own key) from this process. Prints one JSON line and a summary.
// Bounded: every wait has a deadline; everything started here is stopped by PID at the end.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const BIN = path.join(ROOT, 'bin', 'twoway');
// The daemons run with bin/twoway's shebang flags, as an installed twoway (systemd) does.
const { daemonNodeFlags } = await import('../dist/cli/daemon-node-flags.js');
const NODE_FLAGS = daemonNodeFlags(BIN);
const IDLE_STREAMS = Number(process.env.IDLE_STREAMS ?? 10_000);
const IDLE_SESSIONS = Number(process.env.IDLE_SESSIONS ?? 100);
const DEADLINE_MS = 120_000;

const { connectSecure } = await import(path.join(ROOT, 'dist/session/connect-secure.js'));
const { generateKeyPair, encodeKey } = await import(path.join(ROOT, 'dist/crypto/keys.js'));
const pino = (await import('pino')).default;

function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function until(check, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function settle(pids) {
  // Let both daemons finish garbage collection work before reading RSS.
  await new Promise((r) => setTimeout(r, 2_000));
  return pids.reduce((sum, pid) => sum + rssKiB(pid), 0);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'twoway-mem-'));
const started = [];
const sockets = [];
const sessions = [];
const overall = setTimeout(() => {
  console.error('memory bench: overall deadline reached');
  cleanup();
  process.exit(1);
}, DEADLINE_MS);

function cleanup() {
  for (const s of sockets) s.destroy();
  for (const s of sessions) s.close({ code: 'normal' });
  for (const p of started) if (p.exitCode === null) p.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
}

try {
  // The sink runs in a process of its own: with the load generator's sockets in this one, each
  // process stays under the file-descriptor limit.
  const sink = spawn(
    process.execPath,
    [
      '-e',
      `
    const held = [];
    const s = require('node:net').createServer((c) => { c.on('error', () => {}); held.push(c); });
    s.listen(0, '127.0.0.1', 4096, () => console.log(s.address().port));
  `,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  started.push(sink);
  const sinkPort = await new Promise((resolve) => sink.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  const serverPort = await freePort();
  const clientPort = await freePort();
  execFileSync('bash', [path.join(HERE, 'tut-setup.sh'), work, String(sinkPort), String(serverPort), String(clientPort)]);

  // Extra peers for the idle sessions.
  const extra = Array.from({ length: IDLE_SESSIONS }, () => generateKeyPair());
  fs.appendFileSync(
    path.join(work, 'peers.toml'),
    extra.map((k, i) => `\n[[peer]]\nname = "idle-${i}"\npublic_key = "${encodeKey(k.publicKey)}"\nallow = []\n`).join(''),
  );
  const serverKey = fs.readFileSync(path.join(work, 'server.key'), 'utf8').trim();
  const { publicKeyFromPrivate, decodeKey } = await import(path.join(ROOT, 'dist/crypto/keys.js'));
  const serverPub = publicKeyFromPrivate(decodeKey(serverKey, 'server key'));

  const server = spawn(process.execPath, [...NODE_FLAGS, BIN, 'server', '--config', path.join(work, 'server.toml'), '--log-level', 'warn'], {
    stdio: 'ignore',
  });
  started.push(server);
  await until(() => fs.existsSync(path.join(work, 'server.sock')), 'server control socket');
  const client = spawn(process.execPath, [...NODE_FLAGS, BIN, 'client', '--config', path.join(work, 'client.toml'), '--log-level', 'warn'], {
    stdio: 'ignore',
  });
  started.push(client);
  await until(() => fs.existsSync(path.join(work, 'client.sock')), 'client control socket');
  // One stream proves the session is up before the baseline.
  await until(
    () =>
      new Promise((resolve) => {
        const s = net.connect(clientPort, '127.0.0.1');
        s.on('error', () => resolve(false));
        s.on('connect', () =>
          setTimeout(() => {
            s.destroy();
            resolve(true);
          }, 200),
        );
      }),
    'a first stream',
  );
  const pids = [server.pid, client.pid];
  const { controlRequest } = await import(path.join(ROOT, 'dist/control/control-client.js'));
  const openStreams = async () => {
    const reply = await controlRequest(path.join(work, 'server.sock'), { cmd: 'status' });
    return reply.status.sessions.reduce((n, s) => n + s.streams, 0);
  };
  const base = await settle(pids);

  for (let i = 0; i < IDLE_STREAMS; i++) {
    const s = net.connect(clientPort, '127.0.0.1');
    s.on('error', () => {});
    sockets.push(s);
    if (i % 500 === 499) await until(async () => (await openStreams()) >= i - 200, `${i} streams open`);
  }
  await until(async () => (await openStreams()) >= IDLE_STREAMS, `${IDLE_STREAMS} streams open`, 60_000);
  const withStreams = await settle(pids);

  const logger = pino({ level: 'silent' });
  for (const keyPair of extra) {
    sessions.push(await connectSecure({ url: `ws://127.0.0.1:${serverPort}/twoway`, staticKeyPair: keyPair, serverPublicKeys: [serverPub], logger }));
  }
  const withSessions = rssKiB(server.pid) + rssKiB(client.pid);
  const settled = await settle(pids);

  const perStream = ((withStreams - base) * 1024) / IDLE_STREAMS;
  const perSession = ((Math.max(withSessions, settled) - withStreams) * 1024) / IDLE_SESSIONS;
  const result = {
    test: 'memory',
    idleStreams: IDLE_STREAMS,
    idleSessions: IDLE_SESSIONS,
    baseRssKiB: base,
    rssWithStreamsKiB: withStreams,
    rssWithSessionsKiB: settled,
    bytesPerIdleStream: Math.round(perStream),
    bytesPerIdleSession: Math.round(perSession),
  };
  console.log(JSON.stringify(result));
  console.error(
    `memory: ${IDLE_STREAMS} idle streams cost ${(perStream / 1024).toFixed(1)} KiB each (both daemons), ` +
      `${IDLE_SESSIONS} idle sessions ${(perSession / 1024).toFixed(1)} KiB each (server side, plus nothing on the client)`,
  );
} finally {
  clearTimeout(overall);
  cleanup();
}
