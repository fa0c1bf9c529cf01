/**
 * scripts/architecture.mjs, run as `npm run lint` runs it: on the real tree it passes; on small
 * fixture trees it fails on an upward import, a folder cycle, a folder outside the layering and
 * a stale table in docs/ARCHITECTURE.md, and `--write` brings the table back in step.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SCRIPT = path.join(REPO, 'scripts', 'architecture.mjs');
const made: string[] = [];

afterAll(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
});

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The script as a process, as `npm run lint` runs it. */
function spawnScript(...args: string[]): Result {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

type Main = (argv: string[], io: { out: (line: string) => void; err: (line: string) => void }) => number;
const { main } = (await import(pathToFileURL(SCRIPT).href)) as { main: Main };

/** The same entry point in this process (the fixtures need many runs; typescript loads once). */
function run(...args: string[]): Result {
  const out: string[] = [];
  const err: string[] = [];
  const status = main(args, { out: (line) => out.push(line), err: (line) => err.push(line) });
  return { status, stdout: out.join('\n'), stderr: err.join('\n') };
}

const EMPTY_TABLE = '# fixture\n\n<!-- imports:begin -->\n<!-- imports:end -->\n';

/** A tree of `src/` files (path -> text) and a docs/ARCHITECTURE.md. */
function fixture(files: Record<string, string>, doc = EMPTY_TABLE): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'twoway-arch-'));
  made.push(root);
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, 'src', name)), { recursive: true });
    fs.writeFileSync(path.join(root, 'src', name), text);
  }
  fs.mkdirSync(path.join(root, 'docs'));
  fs.writeFileSync(path.join(root, 'docs', 'ARCHITECTURE.md'), doc);
  return root;
}

/** A fixture whose doc table was written by --write and then given "owns" text. */
function describedFixture(files: Record<string, string>): string {
  const root = fixture(files);
  expect(run('--root', root, '--write').status).toBe(0);
  const docFile = path.join(root, 'docs', 'ARCHITECTURE.md');
  fs.writeFileSync(docFile, fs.readFileSync(docFile, 'utf8').replaceAll('(not described yet)', 'a fixture folder'));
  return root;
}

describe('scripts/architecture.mjs', () => {
  it('passes on the real tree, whose table in docs/ARCHITECTURE.md matches the code', () => {
    const r = spawnScript('--check');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('prints the folder table of the real tree, cli importing the daemons and nothing importing cli', () => {
    const r = spawnScript();
    expect(r.status).toBe(0);
    const rows = new Map(
      r.stdout
        .split('\n')
        .map((line) => line.split('|').map((c) => c.trim()))
        .filter((c) => c[2]?.startsWith('`src/'))
        .map((c) => [c[2]!, c[4]!]),
    );
    expect(rows.get('`src/errors.ts`')).toBe('-');
    expect(rows.get('`src/cli/`')).toContain('server');
    expect(rows.get('`src/cli/`')).toContain('client');
    for (const [folder, imports] of rows) if (folder !== '`src/cli/`') expect(imports.split(', ')).not.toContain('cli');
  });

  it('fails on an upward import and on the folder cycle it closes, naming the files', () => {
    const root = describedFixture({
      'lib/queue.ts': 'export const q = 1;\n',
      'mux/frame.ts': "import { q } from '../lib/queue.js';\nexport const f = q;\n",
    });
    expect(run('--root', root, '--check').status).toBe(0);
    // The leaf now reaches up into mux, which imports it back.
    fs.writeFileSync(path.join(root, 'src', 'lib', 'queue.ts'), "import { f } from '../mux/frame.js';\nexport const q = 1;\nexport const g = () => f;\n");
    const r = spawnScript('--root', root, '--check');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('import cycle between folders: lib -> mux -> lib');
    expect(r.stderr).toContain("lib may not import mux, a higher layer (8 > 1): src/lib/queue.ts imports '../mux/frame.js'");
  });

  it('counts import type, export from and import() toward the layering, and ignores comments and strings', () => {
    const typeOnly = fixture({ 'crypto/keys.ts': "import type { S } from '../session/s.js';\nexport type K = S;\n", 'session/s.ts': 'export type S = 1;\n' });
    expect(run('--root', typeOnly).stderr).toContain('crypto may not import session');
    const reexport = fixture({ 'noise/n.ts': "export { c } from '../cli/main.js';\n", 'cli/main.ts': 'export const c = 1;\n' });
    expect(run('--root', reexport).stderr).toContain('noise may not import cli');
    const dynamic = fixture({ 'log/l.ts': "export const load = () => import('../config/c.js');\n", 'config/c.ts': 'export const c = 1;\n' });
    expect(run('--root', dynamic).stderr).toContain('log may not import config');
    const quiet = fixture({
      'lib/a.ts': "// import { c } from '../cli/main.js';\nexport const s = \"import { c } from '../cli/main.js'\";\n",
      'cli/main.ts': "import { s } from '../lib/a.js';\nexport const c = s;\n",
    });
    const r = run('--root', quiet);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('fails on siblings of one layer importing each other and on a folder outside the layering', () => {
    const siblings = fixture({ 'channel.ts': "import { v } from './version.js';\nexport const c = v;\n", 'version.ts': 'export const v = 1;\n' });
    const r1 = run('--root', siblings);
    expect(r1.status).toBe(1);
    expect(r1.stderr).toContain('channel may not import version, a sibling in its own layer');
    const stranger = fixture({ 'gadgets/g.ts': "import { e } from '../errors.js';\nexport const g = e;\n", 'errors.ts': 'export const e = 1;\n' });
    const r2 = run('--root', stranger);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toContain("folder 'gadgets' is not in the layering order");
  });

  it('--check fails with a diff when the table is stale, --write fixes it and keeps the hand-written column', () => {
    const root = describedFixture({
      'errors.ts': 'export const e = 1;\n',
      'mux/frame.ts': "import { e } from '../errors.js';\nexport const f = e;\n",
    });
    const docFile = path.join(root, 'docs', 'ARCHITECTURE.md');
    fs.writeFileSync(docFile, fs.readFileSync(docFile, 'utf8').replace('| 8 | `src/mux/` | a fixture folder |', '| 8 | `src/mux/` | frames and streams |'));
    expect(run('--root', root, '--check').status).toBe(0);
    // A new, allowed import (mux -> lib) that the doc does not show yet.
    fs.mkdirSync(path.join(root, 'src', 'lib'));
    fs.writeFileSync(path.join(root, 'src', 'lib', 'queue.ts'), 'export const q = 1;\n');
    fs.writeFileSync(
      path.join(root, 'src', 'mux', 'frame.ts'),
      "import { e } from '../errors.js';\nimport { q } from '../lib/queue.js';\nexport const f = e + q;\n",
    );
    const stale = run('--root', root, '--check');
    expect(stale.status).toBe(1);
    expect(stale.stderr).toContain('disagrees with the code');
    expect(stale.stderr).toContain('- | 8 | `src/mux/` | frames and streams | errors |');
    expect(stale.stderr).toContain('+ | 8 | `src/mux/` | frames and streams | errors, lib |');
    expect(stale.stderr).toContain('folder \'lib\' has no "owns" text');
    expect(run('--root', root, '--write').status).toBe(0);
    const written = fs.readFileSync(docFile, 'utf8');
    expect(written).toContain('| 8 | `src/mux/` | frames and streams | errors, lib |');
    expect(written).toContain('| 1 | `src/lib/` | (not described yet) | - |');
    expect(written.startsWith('# fixture\n')).toBe(true);
    // Still failing until the new folder is described.
    expect(run('--root', root, '--check').status).toBe(1);
    fs.writeFileSync(docFile, written.replace('(not described yet)', 'leaves'));
    expect(run('--root', root, '--check').status).toBe(0);
  });

  it('fails when the doc has no table markers, and on an unknown argument', () => {
    const root = fixture({ 'errors.ts': 'export const e = 1;\n' }, '# no table\n');
    const r = run('--root', root, '--check');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('has no <!-- imports:begin --> ... <!-- imports:end --> block');
    expect(spawnScript('--bogus').status).toBe(2);
  });
});
