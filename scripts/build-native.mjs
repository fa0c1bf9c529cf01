#!/usr/bin/env node
// Builds the optional native addons beside their compiled loaders in dist/ (inside what npm packs);
// scripts/prepare.mjs and `npm run build` run it after tsc, so `npm ci` and `npm pack` build them
// where they can:
//   src/crypto/native/aead.c       -> dist/crypto/twoway-aead.node       (Linux, macOS; Node's OpenSSL)
//   src/forward/native/sock-diag.c -> dist/forward/twoway-sock-diag.node (Linux)
// Each needs a C compiler (`cc`, or $CC) and the headers Node.js ships (<prefix>/include/node:
// node_api.h, and OpenSSL's for the AEAD). Without them, or when a compile fails, it says so and
// goes on (exit 0): twoway then seals through node:crypto, and finds local connection owners in
// /proc/self/net/tcp{,6}. The AEAD calls the OpenSSL inside the running node (Linux and macOS
// resolve those symbols in the process), so it is built only there.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const headers = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');

const ADDONS = [
  {
    name: 'native AEAD',
    source: 'src/crypto/native/aead.c',
    output: 'dist/crypto/twoway-aead.node',
    platforms: ['linux', 'darwin'],
    headers: ['node_api.h', 'openssl/evp.h'],
    fallback: 'node:crypto seals and opens records instead',
  },
  {
    name: 'native sock_diag',
    source: 'src/forward/native/sock-diag.c',
    output: 'dist/forward/twoway-sock-diag.node',
    platforms: ['linux'],
    headers: ['node_api.h'],
    fallback: 'local listeners read /proc/self/net/tcp{,6} for connection owners instead',
  },
];

function build(addon) {
  const skip = (why) => process.stderr.write(`twoway: ${addon.name} not built (${why}); ${addon.fallback}\n`);
  if (!addon.platforms.includes(process.platform)) return skip(`not supported on ${process.platform}`);
  const missing = addon.headers.find((h) => !fs.existsSync(path.join(headers, h)));
  if (missing !== undefined) return skip(`no ${missing} in ${headers}`);
  const output = path.join(root, addon.output);
  fs.mkdirSync(path.dirname(output), { recursive: true });
  const partial = `${output}.tmp`;
  const compiler = process.env.CC || 'cc';
  const args = ['-O2', '-fPIC', '-shared', '-fvisibility=hidden', `-I${headers}`, '-o', partial, path.join(root, addon.source)];
  if (process.platform === 'darwin') args.push('-undefined', 'dynamic_lookup');
  const result = spawnSync(compiler, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.error) return skip(`${compiler}: ${result.error.message}`);
  if (result.status !== 0) return skip(`${compiler} exited with ${result.status}`);
  fs.renameSync(partial, output);
  process.stderr.write(`twoway: ${addon.name} built (${path.relative(process.cwd(), output)})\n`);
}

for (const addon of ADDONS) build(addon);
