#!/usr/bin/env node
// The architecture check: which top folder of src/ imports which, against the layering below and
// against the table in docs/ARCHITECTURE.md (between the imports:begin and imports:end markers).
//
//   node scripts/architecture.mjs            prints the table; exits 1 on a cycle or an upward import
//   node scripts/architecture.mjs --check    also exits 1, with a diff, when the doc's table differs
//   node scripts/architecture.mjs --write    rewrites the doc's table (keeps its "owns" column)
//   --root DIR                               the tree to check (default: this repository)
//
// Every import of a relative path counts: `import ... from`, `import type`, `export ... from`,
// `import 'x'` and `import('x')` (typescript's own scanner finds them, so comments and strings do
// not). A file belongs to its top folder (`src/device/e2e/x.ts` is `device`); the root files
// `errors.ts`, `channel.ts` and `version.ts` are folders of their own.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The layers, leaves first. A folder imports only folders of lower layers; folders that share a
 * layer are siblings and import neither each other nor anything above. `errors` sits under `lib`
 * so that a leaf may throw the project's errors; `log` is imported by every layer from `session`
 * up and imports only leaves; `config` compiles files into every layer's options, so it sits
 * above the layers it configures and below the composition roots.
 */
export const LAYERS = [
  ['errors'],
  ['lib'],
  ['channel', 'version'],
  ['log'],
  ['crypto'],
  ['noise'],
  ['transport'],
  ['session'],
  ['mux'],
  ['policy'],
  ['forward'],
  ['device'],
  ['verify'],
  ['config'],
  ['enroll'],
  ['control'],
  ['client'],
  ['server'],
  ['cli'],
];

export const BEGIN = '<!-- imports:begin -->';
export const END = '<!-- imports:end -->';
const UNDESCRIBED = '(not described yet)';
const ROOT_FILES = new Set(['errors', 'channel', 'version']);

const layerOf = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i])));

function listSources(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) return listSources(full);
      return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
    });
}

/** `src/x/...` -> `x`; `src/errors.ts` -> `errors`; undefined outside src/. */
function folderOf(src, file) {
  const rel = path.relative(src, file);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  const parts = rel.split(path.sep);
  return parts.length > 1 ? parts[0] : parts[0].replace(/\.(ts|js|mjs|cjs)$/, '');
}

/** Every folder-level import edge, with the files and specifiers behind it. */
export function scan(root) {
  const src = path.join(root, 'src');
  const folders = new Set();
  const edges = new Map(); // from -> Map(to -> [{ file, spec }])
  const problems = [];
  for (const file of listSources(src)) {
    const from = folderOf(src, file);
    folders.add(from);
    const rel = path.relative(root, file);
    const { importedFiles } = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    for (const { fileName: spec } of importedFiles) {
      if (!spec.startsWith('.')) continue;
      const to = folderOf(src, path.resolve(path.dirname(file), spec));
      if (to === undefined) {
        problems.push(`${rel} imports '${spec}', outside src/`);
        continue;
      }
      if (to === from) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      const targets = edges.get(from);
      if (!targets.has(to)) targets.set(to, []);
      targets.get(to).push({ file: rel, spec });
    }
  }
  for (const targets of edges.values()) for (const to of targets.keys()) folders.add(to);
  return { folders, edges, problems };
}

/** Folder-level cycles (each reported once, from its lowest-sorting folder). */
export function findCycles(edges) {
  const cycles = [];
  const seen = new Set();
  const next = (f) => [...(edges.get(f)?.keys() ?? [])].sort();
  for (const start of [...edges.keys()].sort()) {
    // Shortest path back to `start` through folders that sort after it (breadth first).
    const back = new Map([[start, undefined]]);
    const queue = [start];
    let found;
    while (queue.length > 0 && found === undefined) {
      const f = queue.shift();
      for (const t of next(f)) {
        if (t === start) {
          found = f;
          break;
        }
        if (t > start && !back.has(t)) {
          back.set(t, f);
          queue.push(t);
        }
      }
    }
    if (found === undefined) continue;
    const loop = [];
    for (let f = found; f !== undefined; f = back.get(f)) loop.unshift(f);
    const key = loop.join(' ');
    if (seen.has(key)) continue;
    seen.add(key);
    cycles.push([...loop, start]);
  }
  return cycles;
}

function describeEdge(edges, from, to) {
  const via = edges.get(from).get(to);
  const first = via[0];
  return `${first.file} imports '${first.spec}'${via.length > 1 ? ` (and ${via.length - 1} more)` : ''}`;
}

/** Every broken rule: imports outside src/, folders outside the layering, cycles, upward imports. */
export function violations({ folders, edges, problems }) {
  const out = [...problems];
  for (const f of [...folders].sort()) {
    if (!layerOf.has(f)) out.push(`folder '${f}' is not in the layering order (LAYERS in scripts/architecture.mjs)`);
  }
  for (const cycle of findCycles(edges)) {
    const steps = cycle.slice(0, -1).map((f, i) => describeEdge(edges, f, cycle[i + 1]));
    out.push(`import cycle between folders: ${cycle.join(' -> ')} (${steps.join('; ')})`);
  }
  for (const [from, targets] of [...edges].sort()) {
    for (const to of [...targets.keys()].sort()) {
      const a = layerOf.get(from);
      const b = layerOf.get(to);
      if (a === undefined || b === undefined || b < a) continue;
      const how = a === b ? 'a sibling in its own layer' : `a higher layer (${b} > ${a})`;
      out.push(`${from} may not import ${to}, ${how}: ${describeEdge(edges, from, to)}`);
    }
  }
  return out;
}

function displayName(folder) {
  return ROOT_FILES.has(folder) ? `\`src/${folder}.ts\`` : `\`src/${folder}/\``;
}

function splitRow(line) {
  const cells = line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/);
  return cells.map((c) => c.trim());
}

/** The block between the markers: its lines, and the "owns" text of each folder row. */
export function readDocTable(text) {
  const begin = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (begin < 0 || end < begin) return undefined;
  const inner = text.slice(begin + BEGIN.length, end);
  const owns = new Map();
  for (const line of inner.split('\n')) {
    if (!line.trim().startsWith('|')) continue;
    const cells = splitRow(line);
    const m = /^`src\/([^/`]+?)(?:\.ts|\/)`$/.exec(cells[1] ?? '');
    if (m) owns.set(m[1], cells[2] ?? '');
  }
  return { begin, end, inner, owns };
}

/** The generated block: one row per folder in layer order, the doc's "owns" text kept. */
export function renderTable({ folders, edges }, owns) {
  const known = [...folders].filter((f) => layerOf.has(f));
  known.sort((a, b) => layerOf.get(a) - layerOf.get(b) || a.localeCompare(b));
  const unknown = [...folders].filter((f) => !layerOf.has(f)).sort();
  const rows = [...known, ...unknown].map((f) => {
    const imports = [...(edges.get(f)?.keys() ?? [])];
    imports.sort((a, b) => (layerOf.get(a) ?? 99) - (layerOf.get(b) ?? 99) || a.localeCompare(b));
    const layer = layerOf.has(f) ? String(layerOf.get(f)) : '?';
    const text = owns.get(f)?.trim() || UNDESCRIBED;
    return `| ${layer} | ${displayName(f)} | ${text} | ${imports.length > 0 ? imports.join(', ') : '-'} |`;
  });
  return ['', '| layer | folder | owns | imports from |', '| --- | --- | --- | --- |', ...rows, ''].join('\n');
}

function lineDiff(found, wanted) {
  const a = found.split('\n');
  const b = wanted.split('\n');
  const out = [];
  for (const line of a) if (!b.includes(line)) out.push(`- ${line}`);
  for (const line of b) if (!a.includes(line)) out.push(`+ ${line}`);
  return out.join('\n');
}

/** Runs the check; returns the exit code (0 fine, 1 a broken rule or a stale doc, 2 misuse). */
export function main(argv, io = { out: console.log, err: console.error }) {
  const args = [...argv];
  let root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  let mode = 'print';
  while (args.length > 0) {
    const a = args.shift();
    if (a === '--check' || a === '--write') mode = a.slice(2);
    else if (a === '--root' && args.length > 0) root = path.resolve(args.shift());
    else {
      io.err(`architecture: unknown argument ${JSON.stringify(a)} (use --check, --write, --root DIR)`);
      return 2;
    }
  }
  const graph = scan(root);
  const docFile = path.join(root, 'docs', 'ARCHITECTURE.md');
  const docText = fs.existsSync(docFile) ? fs.readFileSync(docFile, 'utf8') : '';
  const doc = readDocTable(docText);
  const table = renderTable(graph, doc?.owns ?? new Map());
  let failed = false;

  for (const v of violations(graph)) {
    io.err(`architecture: ${v}`);
    failed = true;
  }
  if (mode === 'print') io.out(table.trim());
  if (mode === 'check' || mode === 'write') {
    if (doc === undefined) {
      io.err(`architecture: ${path.relative(root, docFile)} has no ${BEGIN} ... ${END} block`);
      return 1;
    }
    if (mode === 'write') {
      if (doc.inner !== table) fs.writeFileSync(docFile, docText.slice(0, doc.begin + BEGIN.length) + table + docText.slice(doc.end));
      io.out(`architecture: ${path.relative(root, docFile)} ${doc.inner === table ? 'was already up to date' : 'rewritten'}`);
    } else if (doc.inner !== table) {
      io.err(`architecture: the import table in ${path.relative(root, docFile)} disagrees with the code (- doc, + code);`);
      io.err('run `node scripts/architecture.mjs --write` and review the result:');
      io.err(lineDiff(doc.inner, table));
      failed = true;
    }
    for (const f of graph.folders) {
      if (!(doc.owns.get(f)?.trim() ?? '') || doc.owns.get(f) === UNDESCRIBED) {
        if (mode === 'check') {
          io.err(`architecture: folder '${f}' has no "owns" text in ${path.relative(root, docFile)}`);
          failed = true;
        }
      }
    }
  }
  return failed ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
