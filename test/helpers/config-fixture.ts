import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach } from 'vitest';
import { tempDir } from './temp-dir.js';

/** A fresh temp folder per test, removed afterwards. */
export function useTempDir(): () => string {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = tempDir('config');
    dirs.push(d);
    return d;
  };
}

/** A random key as base64 (canonical). */
export function randomKey(): string {
  return randomBytes(32).toString('base64');
}

/** Writes a key file with `mode`; returns [path, base64 content]. */
export function writeKey(dir: string, name: string, mode = 0o600): [string, string] {
  const key = randomKey();
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${key}\n`, { mode });
  fs.chmodSync(file, mode);
  return [file, key];
}

export function write(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** Runs `fn`, expecting a thrown error; returns it. */
export function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected an error, none was thrown');
}
