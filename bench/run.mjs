// `npm run bench`: every benchmark in one run, side by side with the anchors.
//   1. crypto: Noise handshakes/s and transport MB/s per backend (bench/crypto.mjs)
//   2. tunnel: ../shared/bench/anchors.sh with twoway as the tunnel under test, next to direct
//      loopback, ssh -L (chacha20, aes128-gcm), stunnel with mutual TLS and the npm ssh2 package's
//      tunnel (aes128-gcm, chacha20; new sessions/s too, bench/twoway-handshakes.mjs); two chained plain
//      Node.js relays (the platform's floor) and twoway through a device agent (user client ->
//      server -> device agent, end to end), bench/anchor-hooks.sh
//   3. memory: RSS per idle stream and per idle session (bench/memory.mjs)
//   4. verify: handshake-to-first-stream latency, verification valid vs no verify (bench/verify-latency.mjs)
// Select parts with BENCH="crypto tunnel memory verify" (default: all). Results land in
// $RESULTS_DIR (default /tmp/twoway-bench-results). Everything stays on loopback and is bounded.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const SHARED = process.env.SHARED_BENCH ?? path.resolve(ROOT, '..', 'shared', 'bench');
const parts = (process.env.BENCH ?? 'crypto tunnel memory verify').split(/\s+/).filter(Boolean);
const results = process.env.RESULTS_DIR ?? '/tmp/twoway-bench-results';
fs.mkdirSync(results, { recursive: true });

function run(title, command, args, env = {}) {
  console.log(`\n=== ${title} ===`);
  const r = spawnSync(command, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) console.log(`(${title} exited with ${r.status ?? r.signal})`);
  return r.status === 0;
}

if (!fs.existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) run('build', 'npx', ['tsc', '-p', 'tsconfig.json']);
// The daemons run with bin/twoway's shebang flags, as an installed twoway (systemd) does.
const { daemonNodeFlags } = await import('../dist/cli/daemon-node-flags.js');
const NODE_FLAGS = daemonNodeFlags().join(' ');

let ok = true;
if (parts.includes('crypto')) ok = run('crypto (Noise engine)', process.execPath, [path.join(HERE, 'crypto.mjs')]) && ok;

if (parts.includes('tunnel')) {
  if (!fs.existsSync(path.join(SHARED, 'anchors.sh'))) {
    console.log(`\n=== tunnel ===\nno harness at ${SHARED} (set SHARED_BENCH)`);
    ok = false;
  } else {
    const bin = path.join(ROOT, 'bin', 'twoway');
    ok =
      run('tunnel (side by side with the anchors)', 'bash', [path.join(SHARED, 'anchors.sh')], {
        // node_relay and twoway_device (bench/anchor-hooks.sh): two plain Node.js relays (the platform's
        // floor), and the same load through a device agent, end to end.
        // node-ssh2, node-ssh2-chacha20: the npm ssh2 package's tunnel (installed on demand into
        // BENCH_DEPS_DIR by the harness, not a dependency of twoway), the fastest peer in our runtime.
        ANCHORS: process.env.ANCHORS ?? 'direct node_relay ssh-chacha20 ssh-aes128gcm stunnel node-ssh2 node-ssh2-chacha20 tut twoway_device',
        TUT_HOOK_FILE: path.join(HERE, 'anchor-hooks.sh'),
        TWOWAY_BIN: bin,
        NODE_BIN: process.execPath,
        DAEMON_NODE_FLAGS: NODE_FLAGS,
        TWOWAY_BENCH_DIR: HERE,
        TUT_NAME: 'twoway',
        TUT_NOTE: 'client + server daemons, ws://, Noise IKpsk2 ChaChaPoly',
        TUT_SETUP_CMD: `bash ${path.join(HERE, 'tut-setup.sh')} {WORK} {SINK_PORT} {SERVER_PORT} {CLIENT_PORT}`,
        TUT_SERVER_CMD: `${process.execPath} ${NODE_FLAGS} ${bin} server --config {WORK}/server.toml --log-level warn`,
        // New authenticated sessions per second (the harness's handshake table).
        TUT_HS_CMD: process.env.TUT_HS_CMD ?? `${process.execPath} ${path.join(HERE, 'twoway-handshakes.mjs')} --work {WORK}`,
        TUT_CLIENT_CMD: `${process.execPath} ${NODE_FLAGS} ${bin} client --config {WORK}/client.toml --log-level warn`,
        RESULTS_DIR: results,
      }) && ok;
  }
}

if (parts.includes('memory')) ok = run('memory (idle streams and sessions)', process.execPath, [path.join(HERE, 'memory.mjs')]) && ok;
if (parts.includes('verify'))
  ok = run('verify (handshake to first stream, verified vs plain)', process.execPath, [path.join(HERE, 'verify-latency.mjs')]) && ok;

process.exitCode = ok ? 0 : 1;
