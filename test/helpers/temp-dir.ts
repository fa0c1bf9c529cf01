/** Throwaway folders for tests: private (mkdtemp's 0700), named after their test, removed by it. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Creates `<parent>/twoway-<name>-XXXXXX`. `parent` defaults to the OS temp folder; tests whose
 * daemons run as another user, or that need a short path for unix sockets, pass '/tmp'.
 */
export function tempDir(name: string, parent = os.tmpdir()): string {
  return fs.mkdtempSync(path.join(parent, `twoway-${name}-`));
}
