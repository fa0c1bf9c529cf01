import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LOCK_STALE_MS, withFileLock, writeFileAtomic } from '../../../src/lib/atomic-file.js';
import { tempDir } from '../../helpers/temp-dir.js';

describe('writeFileAtomic', () => {
  let dir: string;
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates a new file with the given mode and leaves no temporary file', () => {
    dir = tempDir('atomic');
    const file = path.join(dir, 'f.json');
    writeFileAtomic(file, 'one', { mode: 0o640 });
    expect(fs.readFileSync(file, 'utf8')).toBe('one');
    expect(fs.statSync(file).mode & 0o777).toBe(0o640);
    expect(fs.readdirSync(dir)).toEqual(['f.json']);
  });

  it('ownerOfDir: a new file created by root gets the folder owner, without it root keeps it (needs root)', () => {
    expect(process.getuid?.(), 'this test changes owners: run the suite as root').toBe(0);
    dir = tempDir('atomic');
    fs.chownSync(dir, 65534, 65534);
    const owned = path.join(dir, 'invites.json');
    writeFileAtomic(owned, '{}', { mode: 0o600, ownerOfDir: true });
    expect([fs.statSync(owned).uid, fs.statSync(owned).gid]).toEqual([65534, 65534]);
    expect(fs.statSync(owned).mode & 0o777).toBe(0o600);
    // A rewrite keeps the file's owner, as before.
    writeFileAtomic(owned, '{"a":1}', { mode: 0o600, forceMode: true, ownerOfDir: true });
    expect(fs.statSync(owned).uid).toBe(65534);
    const plain = path.join(dir, 'other.json');
    writeFileAtomic(plain, '{}');
    expect(fs.statSync(plain).uid).toBe(0);
  });

  it('keeps the mode of the file it replaces unless forceMode', () => {
    dir = tempDir('atomic');
    const file = path.join(dir, 'f.json');
    fs.writeFileSync(file, 'old', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    writeFileAtomic(file, 'new', { mode: 0o600 });
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    writeFileAtomic(file, 'newer', { mode: 0o600, forceMode: true });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file, 'utf8')).toBe('newer');
  });
});

describe('withFileLock', () => {
  let dir: string;
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('holds <file>.lock while the function runs and removes it after, also on a throw', () => {
    dir = tempDir('lock');
    const file = path.join(dir, 'f.json');
    const seen = withFileLock(file, () => fs.existsSync(`${file}.lock`));
    expect(seen).toBe(true);
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
    expect(() =>
      withFileLock(file, () => {
        throw new Error('inside');
      }),
    ).toThrow('inside');
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
  });

  it('refuses with ELOCKED while a fresh lock is held, and breaks a stale one', () => {
    dir = tempDir('lock');
    const file = path.join(dir, 'f.json');
    fs.writeFileSync(`${file}.lock`, '');
    let clock = Date.now();
    // The clock jumps past the wait while the lock stays fresh (its mtime is real time).
    const jumping = (): number => (clock += 3_000);
    expect(() => withFileLock(file, () => 'never', jumping)).toThrow(expect.objectContaining({ code: 'ELOCKED' }));
    expect(fs.existsSync(`${file}.lock`)).toBe(true);
    const old = (Date.now() - LOCK_STALE_MS - 1_000) / 1000;
    fs.utimesSync(`${file}.lock`, old, old);
    expect(withFileLock(file, () => 'taken')).toBe('taken');
  });
});
