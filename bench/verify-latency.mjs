// The cost of user verification: handshake-to-first-stream latency for a peer whose verification
// is already valid (verify = "totp", logged in once before the rounds) against a peer without
// verify, through a real server daemon (bin/twoway server) on loopback. Each round, for each peer
// in turn: a new session (WebSocket upgrade, Noise IKpsk2 handshake, key confirmation) and one
// stream to an echo target, timed from the start of the connect to the stream's acceptance (and,
// apart, from the established session to the acceptance: the gate's share). Medians over N rounds.
//   node bench/verify-latency.mjs [--rounds N]   (default 40; VERIFY_BENCH_ROUNDS too)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (!fs.existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) {
  console.error('verify-latency: build first (npm run build)');
  process.exit(1);
}
const dist = (rel) => import(pathToFileURL(path.join(ROOT, 'dist', rel)).href);
const { connectSecure } = await dist('session/connect-secure.js');
const { MuxSession } = await dist('mux/session.js');
const { encodeKey, generateKeyPair } = await dist('crypto/keys.js');
const { createLogger } = await dist('log/logger.js');
const { enrolTotp, readTotpEntry, totpOf } = await dist('verify/totp-secrets.js');
const { VERIFY_TARGET, verifyRequest } = await dist('verify/verify-exchange.js');
const { daemonNodeFlags } = await dist('cli/daemon-node-flags.js');

const argRounds = process.argv.indexOf('--rounds');
const ROUNDS = Math.max(3, Math.min(1000, Number(argRounds > 0 ? process.argv[argRounds + 1] : (process.env.VERIFY_BENCH_ROUNDS ?? 40))));
const STEP_TIMEOUT_MS = 15_000;
const logger = createLogger({ level: 'silent', destination: process.stderr, pretty: false });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twoway-verify-bench-'));
const echo = net.createServer((s) => {
  s.on('error', () => {});
  s.pipe(s);
});
await new Promise((r) => echo.listen(0, '127.0.0.1', r));
const echoPort = echo.address().port;
const target = `127.0.0.1:${echoPort}`;

const serverKey = generateKeyPair();
const peers = { plain: generateKeyPair(), verified: generateKeyPair() };
fs.writeFileSync(path.join(dir, 'server.key'), `${encodeKey(serverKey.privateKey)}\n`, { mode: 0o600 });
fs.writeFileSync(
  path.join(dir, 'peers.toml'),
  `[[peer]]\nname = "plain"\npublic_key = "${encodeKey(peers.plain.publicKey)}"\nallow = ["${target}"]\n\n` +
    `[[peer]]\nname = "verified"\npublic_key = "${encodeKey(peers.verified.publicKey)}"\nallow = ["${target}"]\nverify = "totp"\n`,
);
fs.writeFileSync(
  path.join(dir, 'server.toml'),
  `[server]\nlisten = "127.0.0.1:0"\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\ncontrol_socket = "server.sock"\nshutdown_grace_ms = 1000\n` +
    // Rounds open sessions quickly from two keys: keep the per-key handshake budget out of the way.
    `\n[limits]\nhandshake_rate_per_key = 1000\nhandshake_burst_per_key = 1000\nhandshake_rate_per_ip = 1000\nhandshake_burst_per_ip = 1000\n`,
);
const totpFile = path.join(dir, 'totp.json');
enrolTotp(totpFile, 'verified', 'bench');

const server = spawn(process.execPath, [...daemonNodeFlags(), path.join(ROOT, 'bin', 'twoway'), 'server', '--config', path.join(dir, 'server.toml')], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let port;
try {
  port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not listen in time')), STEP_TIMEOUT_MS);
    let buffered = '';
    server.stdout.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      if (process.env.VERIFY_BENCH_DEBUG) process.stderr.write(chunk);
      for (const line of buffered.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const l = JSON.parse(line);
          if (l.event === 'listen' && l.port) {
            clearTimeout(timer);
            resolve(Number(l.port));
          }
        } catch {
          // a partial line
        }
      }
    });
    server.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
  });
  const url = `ws://127.0.0.1:${port}/twoway`;
  const serverPublicKeys = [serverKey.publicKey];
  const last = new Map();

  /** One session of `peer`: [connect -> stream accepted, session established -> stream accepted] in ms. */
  async function round(name) {
    // The server refuses a key's initiations closer than 20 ms apart (counted from their arrival).
    const wait = (last.get(name) ?? 0) + 40 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t0 = performance.now();
    const session = await connectSecure({ url, staticKeyPair: peers[name], serverPublicKeys, logger });
    const t1 = performance.now();
    const mux = new MuxSession(session, { role: 'client', logger });
    const stream = mux.openStream(target);
    await new Promise((resolve, reject) => {
      stream.once('open', resolve);
      stream.once('error', reject);
    });
    const t2 = performance.now();
    stream.destroy();
    await new Promise((resolve) => {
      session.onClose(() => resolve());
      mux.close();
      session.close({ code: 'normal' });
    });
    last.set(name, performance.now());
    return [t2 - t0, t2 - t1];
  }

  // Log the verified peer in once: its verification then holds for every round (verify_valid_ms 8 h).
  {
    const session = await connectSecure({ url, staticKeyPair: peers.verified, serverPublicKeys, logger });
    last.set('verified', performance.now());
    const mux = new MuxSession(session, { role: 'client', logger });
    const code = totpOf(readTotpEntry(totpFile, 'verified').secret).generate();
    const answer = await verifyRequest(mux.openStream(VERIFY_TARGET), {
      v: 1,
      method: 'totp',
      code,
      binding: Buffer.from(session.binding).toString('base64url'),
    });
    if (answer.ok !== true) throw new Error(`login refused: ${JSON.stringify(answer)}`);
    mux.close();
    session.close({ code: 'normal' });
    last.set('verified', performance.now());
  }

  for (let i = 0; i < 3; i++) for (const name of ['plain', 'verified']) await round(name); // warm-up
  const times = { plain: [], verified: [] };
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate which peer goes first, so neither always follows the other.
    for (const name of i % 2 === 0 ? ['plain', 'verified'] : ['verified', 'plain']) times[name].push(await round(name));
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))];
  console.log(`verify latency: ${ROUNDS} rounds per peer, alternated, through a real server daemon on loopback (Node ${process.version})`);
  console.log('| peer | connect -> first stream open, median ms | p90 ms | session -> first stream open, median ms | p90 ms |');
  console.log('| --- | --: | --: | --: | --: |');
  for (const [name, label] of [
    ['plain', 'no verify'],
    ['verified', 'verify = "totp", verification valid'],
  ]) {
    const total = times[name].map((t) => t[0]);
    const open = times[name].map((t) => t[1]);
    console.log(`| ${label} | ${median(total).toFixed(2)} | ${p90(total).toFixed(2)} | ${median(open).toFixed(3)} | ${p90(open).toFixed(3)} |`);
  }
  const d = median(times.verified.map((t) => t[0])) - median(times.plain.map((t) => t[0]));
  console.log(`difference of the medians (verified - plain): ${d >= 0 ? '+' : ''}${d.toFixed(2)} ms`);
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => (server.exitCode !== null ? r() : server.once('exit', r)));
  echo.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
