#!/usr/bin/env node
// Builds the optional native AEAD (aead.c) into dist/crypto/twoway-aead.node, beside the compiled
// loader (src/crypto/native-aead.ts) and inside what npm packs; scripts/prepare.mjs runs it after
// tsc, so `npm ci` and `npm pack` build it where they can. It needs a C compiler (`cc`, or $CC) and the
// headers Node.js ships (<prefix>/include/node: node_api.h and OpenSSL's). Without them, or when
// the compile fails, it says so and exits 0: twoway then seals and opens through node:crypto.
// The addon calls the OpenSSL inside the running node (Linux and macOS resolve those symbols in
// the process), so it is built only there.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const output = path.resolve(here, '..', '..', '..', 'dist', 'crypto', 'twoway-aead.node');
const headers = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');

function skip(why) {
  process.stderr.write(`twoway: native AEAD not built (${why}); node:crypto seals and opens records instead\n`);
  process.exit(0);
}

if (process.platform !== 'linux' && process.platform !== 'darwin') skip(`not supported on ${process.platform}`);
if (!fs.existsSync(path.join(headers, 'node_api.h')) || !fs.existsSync(path.join(headers, 'openssl', 'evp.h'))) {
  skip(`no Node.js headers with OpenSSL in ${headers}`);
}
fs.mkdirSync(path.dirname(output), { recursive: true });
const partial = `${output}.tmp`;
const compiler = process.env.CC || 'cc';
const args = ['-O2', '-fPIC', '-shared', '-fvisibility=hidden', `-I${headers}`, '-o', partial, path.join(here, 'aead.c')];
if (process.platform === 'darwin') args.push('-undefined', 'dynamic_lookup');
const result = spawnSync(compiler, args, { stdio: ['ignore', 'inherit', 'inherit'] });
if (result.error) skip(`${compiler}: ${result.error.message}`);
if (result.status !== 0) skip(`${compiler} exited with ${result.status}`);
fs.renameSync(partial, output);
process.stderr.write(`twoway: native AEAD built (${path.relative(process.cwd(), output)})\n`);
