import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp-dir.js';

// The README's Install section, on a clean prefix: the packed tarball installed with `npm install -g`
// puts a working `twoway` in PREFIX/bin, and every path the README names in the package exists.
// (A fresh clone installed with --install-links, and the install inside a booted Debian, are in
// test/system/run.sh: they need the registry and minutes.)
const REPO = path.resolve(import.meta.dirname, '../..');
const README = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const NPM_TIMEOUT_MS = 120_000;

let tmp = '';
let prefix = '';
let installed = '';

function npm(args: string[]): string {
  const r = spawnSync('npm', args, { cwd: REPO, encoding: 'utf8', timeout: NPM_TIMEOUT_MS, env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** The code blocks of the README, as one text. */
function readmeCode(): string {
  return [...README.matchAll(/^```(?:sh|bash|toml)?\n([\s\S]*?)^```$/gm)].map((m) => m[1]).join('\n');
}

describe('npm install -g of the packed tarball (README: Install)', () => {
  beforeAll(() => {
    expect(fs.existsSync(path.join(REPO, 'dist/cli/main.js')), 'dist/ is built (npm test runs tsc first)').toBe(true);
    tmp = tempDir('install');
    prefix = path.join(tmp, 'prefix');
    // dist/ is already built; --ignore-scripts keeps pack from building it again.
    npm(['pack', '--silent', '--ignore-scripts', '--pack-destination', tmp]);
    const tgz = fs.readdirSync(tmp).find((f) => /^twoway-.*\.tgz$/.test(f));
    expect(tgz, 'npm pack wrote twoway-*.tgz').toBeDefined();
    npm(['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', path.join(tmp, tgz!)]);
    installed = path.join(prefix, 'lib', 'node_modules', 'twoway');
  }, 2 * NPM_TIMEOUT_MS);

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('puts a working twoway in PREFIX/bin: --version, keygen, pubkey', () => {
    const bin = path.join(prefix, 'bin', 'twoway');
    expect(execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 20_000 }).trim()).toBe(VERSION);
    const key = execFileSync(bin, ['keygen'], { encoding: 'utf8', timeout: 20_000 }).trim();
    expect(Buffer.from(key, 'base64')).toHaveLength(32);
    const pub = execFileSync(bin, ['pubkey'], { input: `${key}\n`, encoding: 'utf8', timeout: 20_000 }).trim();
    expect(Buffer.from(pub, 'base64')).toHaveLength(32);
    expect(pub).not.toBe(key);
  });

  it('every $(npm root -g)/twoway/... path the README names exists in the installed package', () => {
    const named = [...new Set([...README.matchAll(/\$\(npm root -g\)\/twoway\/([\w./@-]*)/g)].map((m) => m[1]))];
    expect(named.length).toBeGreaterThan(0);
    for (const p of named) expect(fs.existsSync(path.join(installed, p)), p).toBe(true);
  });

  it('the configs/ and systemd/ files the README copies are in the installed package', () => {
    const named = [...new Set([...readmeCode().matchAll(/(?<![\w/.])((?:configs|systemd)\/[\w.@/-]+\.(?:toml|service))/g)].map((m) => m[1]))];
    expect(named).toEqual(expect.arrayContaining(['configs/server.toml', 'systemd/twoway-server.service']));
    for (const p of named) expect(fs.existsSync(path.join(installed, p)), p).toBe(true);
  });

  it('the README names no /usr/share/doc path (nothing installs there)', () => {
    expect(README).not.toMatch(/\/usr\/share\/doc\/twoway/);
  });
});
