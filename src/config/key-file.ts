/**
 * Private key and psk files: one base64 32-byte key per file, refused unless only the owner can
 * read or write it and the owner is this process's user (or, for check-config --user, the service
 * user), as ssh refuses loose private keys.
 * The mode and owner are checked on the open descriptor, so a file swapped between the check and
 * the read is never used. Messages name the file, never its content.
 */
import * as fs from 'node:fs';
import { ConfigError } from '../errors.js';
import { KEY_BASE64_CHARS, decodeBase64KeyBytes } from './base64-key.js';

/** Key files are tiny; anything larger is not a key file and is not read into memory. */
export const MAX_KEY_FILE_BYTES = 4096;
/** Group and other permission bits: none may be set on a secret file. */
const LOOSE_MODE_BITS = 0o077;
/** Mode of secret files we create (keygen). */
export const SECRET_FILE_MODE = 0o600;

/** What the key in a file is, for messages: 'private key' or 'psk'. */
export type KeyFileKind = 'private key' | 'psk';

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

/**
 * Who must own a secret file: the uid the daemon will run as. By default the user running this
 * process; `twoway check-config --user NAME` checks on behalf of a service user instead, so an
 * administrator running it as root gets advice that fits the service.
 */
export interface SecretFileOwner {
  readonly uid: number;
  /** The user name as given (`--user twoway`), for messages. */
  readonly name?: string;
}

/**
 * Throws ERR_KEY_FILE_MODE unless `stat` describes a regular file owned by `owner` (default: the
 * current user) with no group/other permission bits. `getuid` is injectable for tests.
 */
export function assertSecretFileStat(path: string, stat: fs.Stats, what: string, getuid: () => number = defaultGetuid, owner?: SecretFileOwner): void {
  if (!stat.isFile()) throw new ConfigError('ERR_KEY_FILE', `${what} file ${path}: not a regular file`);
  if ((stat.mode & LOOSE_MODE_BITS) !== 0) {
    throw new ConfigError('ERR_KEY_FILE_MODE', `${what} file ${path} has mode ${octal(stat.mode)}, readable or writable by others; run: chmod 600 ${path}`);
  }
  if (owner !== undefined) {
    if (stat.uid !== owner.uid) {
      const who = owner.name !== undefined && owner.name !== String(owner.uid) ? `${owner.name} (uid ${owner.uid})` : `uid ${owner.uid}`;
      throw new ConfigError(
        'ERR_KEY_FILE_MODE',
        `${what} file ${path} is owned by uid ${stat.uid}, not by the service user ${who}; run: chown ${owner.name ?? owner.uid} ${path}`,
      );
    }
    return;
  }
  const uid = getuid();
  if (uid >= 0 && stat.uid !== uid) {
    throw new ConfigError(
      'ERR_KEY_FILE_MODE',
      `${what} file ${path} is owned by uid ${stat.uid}, not by the user running twoway (uid ${uid}); ` +
        `if the daemon runs as another user, check with: twoway check-config --user NAME FILE; otherwise run: chown ${uid} ${path}`,
    );
  }
}

function defaultGetuid(): number {
  // Windows has no uids; there the check is skipped.
  return typeof process.getuid === 'function' ? process.getuid() : -1;
}

function openError(path: string, what: string, err: unknown): ConfigError {
  const code = (err as NodeJS.ErrnoException).code;
  const reason = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'permission denied' : `cannot be read (${code ?? 'error'})`;
  return new ConfigError('ERR_KEY_FILE', `${what} file ${path} ${reason}`, { cause: err });
}

/**
 * Reads one base64 32-byte key from a secret file: mode and owner checked on the open descriptor,
 * surrounding whitespace allowed, nothing else. The result is a fresh Uint8Array (never pooled);
 * the caller wipes it when done.
 */
export function readKeyFile(path: string, what: KeyFileKind, owner?: SecretFileOwner): Uint8Array {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY);
  } catch (err) {
    throw openError(path, what, err);
  }
  const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
  try {
    assertSecretFileStat(path, fs.fstatSync(fd), what, defaultGetuid, owner);
    let length = 0;
    // Bounded: each read adds at least one byte or ends the loop, and the buffer is small.
    while (length < buf.length) {
      const n = fs.readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > MAX_KEY_FILE_BYTES) throw new ConfigError('ERR_KEY_FILE', `${what} file ${path}: longer than ${MAX_KEY_FILE_BYTES} bytes, not a key file`);
    let start = 0;
    let end = length;
    while (start < end && isSpace(buf[start] as number)) start++;
    while (end > start && isSpace(buf[end - 1] as number)) end--;
    const key = end - start === KEY_BASE64_CHARS ? decodeBase64KeyBytes(buf.subarray(start, end)) : undefined;
    if (key === undefined) {
      throw new ConfigError(
        'ERR_KEY_FILE',
        `${what} file ${path}: expected one base64 32-byte key (${KEY_BASE64_CHARS} characters), as written by 'twoway keygen'`,
      );
    }
    return key;
  } finally {
    buf.fill(0);
    fs.closeSync(fd);
  }
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** Reads a private key file (see readKeyFile). */
export function readPrivateKeyFile(path: string, owner?: SecretFileOwner): Uint8Array {
  return readKeyFile(path, 'private key', owner);
}

/** Reads a pre-shared key file (see readKeyFile). */
export function readPskFile(path: string, owner?: SecretFileOwner): Uint8Array {
  return readKeyFile(path, 'psk', owner);
}

/** Checks a secret file's mode and owner without reading it (TLS private keys). */
export function checkSecretFile(path: string, what: string, owner?: SecretFileOwner): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(path);
  } catch (err) {
    throw openError(path, what, err);
  }
  assertSecretFileStat(path, stat, what, defaultGetuid, owner);
}

/**
 * Creates `path` with mode 0600, failing if it exists (O_EXCL: never overwrite a key, never
 * follow a planted symlink), writes `bytes` and fsyncs. For `twoway keygen --out` and psk files.
 */
export function writeSecretFile(path: string, bytes: Uint8Array): void {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, SECRET_FILE_MODE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'EEXIST' ? 'already exists; refusing to overwrite it' : `cannot be created (${code ?? 'error'})`;
    throw new ConfigError('ERR_KEY_FILE', `secret file ${path} ${reason}`, { cause: err });
  }
  try {
    // The umask may have narrowed the mode further, never widened it; fchmod pins exactly 0600.
    fs.fchmodSync(fd, SECRET_FILE_MODE);
    let offset = 0;
    while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(path, { force: true });
    throw new ConfigError('ERR_KEY_FILE', `secret file ${path} could not be written (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  fs.closeSync(fd);
}
