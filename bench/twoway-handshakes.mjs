// The handshake loop for the twoway row of the side-by-side bench (its TUT_HS_CMD): N new sessions
// from this process against the running twoway server, each a WebSocket upgrade, the Noise IKpsk2
// handshake and the client's key confirmation (connectSecure, what `twoway client` runs per
// session), closed once established. The shared harness's peers/twoway-handshakes.mjs does the same
// against the module paths of an older tree; this one follows ours.
//   node bench/twoway-handshakes.mjs --work DIR --count N [--concurrency C] [--keys 256]
// DIR is the tut work dir that bench/tut-setup.sh fills (client.toml, server.toml, peers.toml,
// server.sock). twoway refuses a key's initiations less than 20 ms apart (as WireGuard does), so
// this adds --keys fresh peers (allow = []) to the peers file, has the running server reload it over
// its control socket, and spreads the sessions over those keys round robin, as many clients would.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = process.env.SHARED_BENCH ?? path.resolve(ROOT, '..', 'shared', 'bench');
const { parseArgs, need, fail, handshakeLoop } = await import(pathToFileURL(path.join(SHARED, 'peers', 'common.mjs')).href);
const dist = (rel) => import(pathToFileURL(path.join(ROOT, 'dist', rel)).href);
const { connectSecure } = await dist('session/connect-secure.js');
const { decodeKey, encodeKey, generateKeyPair } = await dist('crypto/keys.js');
const { controlRequest } = await dist('control/control-client.js');
const { createLogger } = await dist('log/logger.js');

const MIN_KEY_INTERVAL_MS = 21;
const { opt } = parseArgs(process.argv.slice(2));
const work = need(opt, 'work');
const nkeys = Math.max(1, Math.min(4096, Number(opt.keys ?? 256)));

function tomlField(file, name) {
  const m = new RegExp(`^${name}\\s*=\\s*"([^"]*)"`, 'm').exec(fs.readFileSync(file, 'utf8'));
  return m ? m[1] : fail(`${file}: no ${name}`);
}
const clientToml = path.join(work, 'client.toml');
const serverToml = path.join(work, 'server.toml');
const url = tomlField(clientToml, 'server_url');
if (!/^ws:\/\/127\.\d+\.\d+\.\d+:\d+\//.test(url)) fail(`not a loopback ws:// URL: ${url}`);
const serverPublicKeys = [decodeKey(tomlField(clientToml, 'server_public_key'), 'server key')];
const logger = createLogger({ level: 'silent', destination: process.stderr, pretty: false });

// Fresh peers, then a reload of the running server (bounded by the control request's own timeout).
const keys = Array.from({ length: nkeys }, () => ({ pair: generateKeyPair(), last: 0 }));
const peersFile = path.resolve(work, tomlField(serverToml, 'peers_file'));
const peerBlocks = keys.map((k, i) => `\n[[peer]]\nname = "hsbench-${process.pid}-${i}"\npublic_key = "${encodeKey(k.pair.publicKey)}"\nallow = []\n`);
fs.appendFileSync(peersFile, peerBlocks.join(''));
const reply = await controlRequest(path.resolve(work, tomlField(serverToml, 'control_socket')), { cmd: 'reload' });
if (!reply.ok) fail(`reload failed: ${JSON.stringify(reply).slice(0, 200)}`);

let next = 0;
async function takeKey() {
  const k = keys[next];
  next = (next + 1) % keys.length;
  const wait = k.last + MIN_KEY_INTERVAL_MS - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  k.last = performance.now();
  return k.pair;
}

await handshakeLoop(opt, `twoway connectSecure (${nkeys} keys)`, async () => {
  const staticKeyPair = await takeKey();
  const session = await connectSecure({ url, staticKeyPair, serverPublicKeys, logger });
  const ready = process.hrtime.bigint();
  return {
    ready,
    close: () =>
      new Promise((resolve) => {
        session.onClose(() => resolve());
        session.close({ code: 'normal' });
      }),
  };
});
process.exit(0);
