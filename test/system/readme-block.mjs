#!/usr/bin/env node
// Prints the ```sh code blocks of README.md that stand under one heading (up to the next heading
// of the same or a higher level), so the system test runs the README's commands as written.
// Usage: node readme-block.mjs README.md 'The administrator: a server' [INDEX]
// INDEX (0-based) picks one block; without it all of them are printed, one after the other.
// Exits 1 with a message when the heading or the block is missing.
import * as fs from 'node:fs';

// With --sections: prints the headings directly under HEADING that hold a sh block, one a line, in
// the README's order: node readme-block.mjs README.md --sections 'Quick start'
const args = process.argv.slice(2);
const sections = args[1] === '--sections';
if (sections) args.splice(1, 1);
const [file, heading, index] = args;
if (!file || !heading) {
  process.stderr.write('usage: readme-block.mjs README.md HEADING [INDEX]\n');
  process.exit(2);
}
const lines = fs.readFileSync(file, 'utf8').split('\n');
const start = lines.findIndex((l) => /^#{1,6} /.test(l) && l.replace(/^#+ /, '').trim() === heading);
if (start < 0) {
  process.stderr.write(`${file}: no heading ${JSON.stringify(heading)}\n`);
  process.exit(1);
}
const level = /^#+/.exec(lines[start])[0].length;
if (sections) {
  const found = [];
  let name;
  let fenced = false;
  for (const line of lines.slice(start + 1)) {
    if (/^```/.test(line)) {
      if (!fenced && name && /^```(sh|bash)\s*$/.test(line) && !found.includes(name)) found.push(name);
      fenced = !fenced;
      continue;
    }
    const h = fenced ? null : /^(#{1,6}) (.*)$/.exec(line);
    if (h && h[1].length <= level) break;
    if (h && h[1].length === level + 1) name = h[2].trim();
  }
  process.stdout.write(found.map((n) => `${n}\n`).join(''));
  process.exit(0);
}
const blocks = [];
let current;
for (const line of lines.slice(start + 1)) {
  const h = /^(#{1,6}) /.exec(line);
  if (!current && h && h[1].length <= level) break;
  if (current) {
    if (/^```\s*$/.test(line)) {
      blocks.push(current.join('\n'));
      current = undefined;
    } else current.push(line);
  } else if (/^```(sh|bash)\s*$/.test(line)) current = [];
}
const picked = index === undefined ? blocks : [blocks[Number(index)]];
if (picked.length === 0 || picked[0] === undefined) {
  process.stderr.write(`${file}: no sh block${index === undefined ? '' : ` #${index}`} under ${JSON.stringify(heading)}\n`);
  process.exit(1);
}
process.stdout.write(`${picked.join('\n')}\n`);
