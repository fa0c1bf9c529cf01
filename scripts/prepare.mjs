#!/usr/bin/env node
// npm's prepare script: builds dist/ with tsc (npm ci, npm pack, npm install -g of a clone or a git URL),
// then the optional native addons (scripts/build-native.mjs).
//
// npm installs a folder or a git URL globally without its devDependencies (the global flag reaches the
// nested install npm runs to prepare the package), so typescript is missing there and the build failed
// with "tsc: not found". Then the devDependencies are installed into this folder first, from
// package-lock.json, with scripts off, and the build runs as usual.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function run(command, args, env = process.env) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.error) throw result.error;
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (!fs.existsSync(tsc)) {
  process.stderr.write('twoway: building dist/ needs the devDependencies (typescript): installing them into this folder first\n');
  // A local install: drop what the outer, global install passed down through the environment.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^npm_config_(global|location|prefix|omit|include|only|production|install_links)$/i.test(k)),
  );
  const npm = process.env.npm_execpath;
  const args = ['install', '--include=dev', '--ignore-scripts', '--no-save', '--no-audit', '--no-fund'];
  if (npm && /\.[cm]?js$/.test(npm)) run(process.execPath, [npm, ...args], env);
  else run(npm || 'npm', args, env);
}
run(process.execPath, [tsc, '-p', 'tsconfig.json']);
// The optional native addons: built where a C compiler and Node's headers exist, else skipped (exit 0).
run(process.execPath, [path.join(root, 'scripts', 'build-native.mjs')]);
