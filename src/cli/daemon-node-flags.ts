/**
 * The Node.js flags the daemons run with. They sit in bin/twoway's first line
 * (`#!/usr/bin/env -S node FLAGS`), so an installed `twoway` (systemd's ExecStart, a shell) gets
 * them from the kernel; whoever starts the daemons as `node bin/twoway ...` instead (the demo,
 * the benchmarks) reads them from there with this, so that it runs what is installed.
 * Heap-sizing flags must be given at start-up (setFlagsFromString is too late, NODE_OPTIONS
 * refuses them), hence the shebang.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** bin/twoway of this package. */
export const TWOWAY_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'twoway');

/** The flags after `node` in a `#!/usr/bin/env -S node ...` line; [] for a plain `#!/usr/bin/env node`. */
export function parseShebangNodeFlags(firstLine: string): string[] {
  const match = /^#!\S*env(?:\s+-S)?\s+node(?:\s+(.*))?$/.exec(firstLine.trim());
  if (match === null) throw new Error(`not a node shebang: ${JSON.stringify(firstLine.slice(0, 100))}`);
  return (match[1] ?? '').split(/\s+/).filter((flag) => flag.length > 0);
}

/** The node flags of bin/twoway's shebang. */
export function daemonNodeFlags(bin: string = TWOWAY_BIN): string[] {
  const firstLine = fs.readFileSync(bin, 'utf8').split('\n', 1)[0] ?? '';
  return parseShebangNodeFlags(firstLine);
}
