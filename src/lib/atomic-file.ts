/**
 * Files that more than one process rewrites (the peers file, invitations, TOTP secrets): a
 * rewrite is a new file renamed over the old one, never a write in place, and writers take an
 * advisory lock first so that two read-modify-write cycles do not lose each other's change.
 *
 * The lock is `<file>.lock`, created with O_EXCL and removed when done. A lock older than
 * LOCK_STALE_MS is taken to be left by a crashed writer and broken. Errors are the system's
 * (ErrnoException with `code` and `syscall`); callers word them for their own files.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** A lock file older than this is left over from a writer that died. */
export const LOCK_STALE_MS = 10_000;
/** How long `withFileLock` waits for another writer before giving up (ELOCKED). */
export const LOCK_WAIT_MS = 5_000;

export interface AtomicWriteOptions {
  /** Mode of a new file (default 0600). An existing file keeps its mode unless `mode` is forced. */
  readonly mode?: number;
  /** Apply `mode` even when the file exists (secrets: always 0600). */
  readonly forceMode?: boolean;
  /**
   * A NEW file gets the owner and group of its folder (when they differ from ours and we are root):
   * root running `sudo twoway invite` creates a file the service user owning the folder can rewrite.
   */
  readonly ownerOfDir?: boolean;
}

/**
 * Replaces `file` with `text`: written to a private temporary file in the same folder, given the
 * owner and mode of the file it replaces, synced, renamed over it, and the folder synced.
 */
export function writeFileAtomic(file: string, text: string | Uint8Array, options: AtomicWriteOptions = {}): void {
  const dir = path.dirname(path.resolve(file));
  let before: fs.Stats | undefined;
  try {
    before = fs.statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const mode = before === undefined || options.forceMode === true ? (options.mode ?? 0o600) : before.mode & 0o7777;
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    // Private until its owner and mode are those of the file it replaces.
    fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    const owner = before ?? (options.ownerOfDir === true && process.getuid?.() === 0 ? fs.statSync(dir) : undefined);
    if (owner !== undefined) {
      const mine = fs.fstatSync(fd);
      if (mine.uid !== owner.uid || mine.gid !== owner.gid) fs.fchownSync(fd, owner.uid, owner.gid);
    }
    fs.fchmodSync(fd, mode);
    fs.writeFileSync(fd, text);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temp, file);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw err;
  }
  fsyncDirectory(dir);
}

/** The owner and mode `writeFileAtomic` would have to keep, for a caller's error message. */
export function statIfExists(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function fsyncDirectory(dir: string): void {
  // Makes the rename durable. Some filesystems refuse fsync on a directory: the rename stands anyway.
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY);
    fs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function tryLock(lock: string, now: () => number): boolean {
  try {
    fs.closeSync(fs.openSync(lock, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  try {
    if (now() - fs.statSync(lock).mtimeMs > LOCK_STALE_MS) fs.rmSync(lock, { force: true });
  } catch {
    // gone meanwhile: the next attempt takes it
  }
  return false;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs `fn` holding the advisory lock of `file`. Synchronous on purpose: the critical sections
 * are a read, an edit and a rename of a small file, and callers (the CLI, the server's join) must
 * not interleave two of them in one process either. Throws an error with code ELOCKED when
 * another writer holds the lock for longer than LOCK_WAIT_MS.
 */
export function withFileLock<T>(file: string, fn: () => T, now: () => number = Date.now): T {
  const lock = `${path.resolve(file)}.lock`;
  const deadline = now() + LOCK_WAIT_MS;
  while (!tryLock(lock, now)) {
    if (now() > deadline) {
      throw Object.assign(new Error(`${lock}: another writer holds the lock`), { code: 'ELOCKED', syscall: 'open', path: lock });
    }
    Atomics.wait(sleeper, 0, 0, 20);
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}
