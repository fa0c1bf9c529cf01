/**
 * The server's TOTP secrets (RFC 6238: SHA-1, 6 digits, 30-second steps, what every authenticator
 * app reads), one per peer, in a JSON file of mode 0600 owned by the service user:
 *
 *   {"version":1,"peers":{"alice":{"secret":"BASE32","created_at":"ISO","last_step":N}}}
 *
 * `last_step` is the replay high-water mark: a code is accepted only for a step above it. Every
 * change is a locked read-modify-write and an atomic rename (lib/atomic-file.ts), because the
 * daemon (joins, logins) and the CLI (`twoway peers totp`) both write. Nothing here logs; the
 * secret leaves this module only inside the otpauth:// URI shown once at enrolment.
 */
import fs from 'node:fs';
import { Secret, TOTP } from 'otpauth';
import { ConfigError } from '../errors.js';
import { withFileLock, writeFileAtomic } from '../lib/atomic-file.js';

export const TOTP_SECRETS_FILE_MODE = 0o600;
export const TOTP_DIGITS = 6;
export const TOTP_PERIOD_S = 30;
export const TOTP_ALGORITHM = 'SHA1';
/** 160-bit secrets, as RFC 4226 recommends. */
export const TOTP_SECRET_BYTES = 20;

export interface TotpEntry {
  /** Base32, as in the otpauth:// URI. */
  readonly secret: string;
  readonly createdAt: string;
  /** The highest step a code was accepted for (0: none yet). */
  readonly lastStep: number;
}

interface FileShape {
  version: 1;
  peers: Record<string, { secret: string; created_at: string; last_step: number }>;
}

function fileError(file: string, err: unknown): ConfigError {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  return new ConfigError('ERR_CONFIG_FILE', `${file}: TOTP secrets could not be read or written (${code})`, { cause: err });
}

function readShape(file: string): FileShape {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if ((stat.mode & 0o077) !== 0) throw new ConfigError('ERR_KEY_FILE_MODE', `${file}: TOTP secrets file must not be readable by group or others (chmod 600)`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, peers: {} };
    if (err instanceof ConfigError) throw err;
    throw fileError(file, err);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError('ERR_CONFIG_FILE', `${file}: not valid JSON (content not shown)`);
  }
  const shape = parsed as Partial<FileShape> | null;
  if (shape === null || typeof shape !== 'object' || shape.version !== 1 || typeof shape.peers !== 'object' || shape.peers === null) {
    throw new ConfigError('ERR_CONFIG_FILE', `${file}: expected {"version":1,"peers":{...}}`);
  }
  for (const [name, entry] of Object.entries(shape.peers)) {
    if (typeof entry?.secret !== 'string' || typeof entry.created_at !== 'string' || !Number.isSafeInteger(entry.last_step) || entry.last_step < 0) {
      throw new ConfigError('ERR_CONFIG_FILE', `${file}: peer ${JSON.stringify(name.slice(0, 64))}: malformed entry (content not shown)`);
    }
  }
  return shape as FileShape;
}

function writeShape(file: string, shape: FileShape): void {
  try {
    writeFileAtomic(file, `${JSON.stringify(shape, null, 2)}\n`, { mode: TOTP_SECRETS_FILE_MODE, forceMode: true, ownerOfDir: true });
  } catch (err) {
    throw fileError(file, err);
  }
}

function locked<T>(file: string, fn: () => T): T {
  try {
    return withFileLock(file, fn);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw fileError(file, err);
    throw err;
  }
}

/** The TOTP generator for a secret (the verifier computes candidate codes with it). */
export function totpOf(secret: string, label = 'twoway', issuer = 'twoway'): TOTP {
  return new TOTP({ issuer, label, algorithm: TOTP_ALGORITHM, digits: TOTP_DIGITS, period: TOTP_PERIOD_S, secret: Secret.fromBase32(secret) });
}

/**
 * Creates (or replaces) the TOTP secret of `peerName` and returns the otpauth:// URI to show the
 * person once. Replacing resets the replay mark: the old authenticator entry stops working.
 */
export function enrolTotp(file: string, peerName: string, issuer: string, now: Date = new Date()): { readonly uri: string } {
  const secret = new Secret({ size: TOTP_SECRET_BYTES }).base32;
  locked(file, () => {
    const shape = readShape(file);
    shape.peers[peerName] = { secret, created_at: now.toISOString(), last_step: 0 };
    writeShape(file, shape);
  });
  return { uri: totpOf(secret, peerName, issuer).toString() };
}

/** The peer's entry, or undefined when it has no TOTP secret. */
export function readTotpEntry(file: string, peerName: string): TotpEntry | undefined {
  const entry = readShape(file).peers[peerName];
  return entry === undefined ? undefined : { secret: entry.secret, createdAt: entry.created_at, lastStep: entry.last_step };
}

/**
 * Records that a code for `step` was accepted, if `step` is above the mark: true then, false when
 * the mark is already at or above it (a replay, even one that raced another process).
 */
export function advanceTotpStep(file: string, peerName: string, step: number): boolean {
  return locked(file, () => {
    const shape = readShape(file);
    const entry = shape.peers[peerName];
    if (entry === undefined || step <= entry.last_step) return false;
    entry.last_step = step;
    writeShape(file, shape);
    return true;
  });
}

/** Drops the peer's secret (the peer was removed, or re-enrols). True when there was one. */
export function removeTotp(file: string, peerName: string): boolean {
  return locked(file, () => {
    const shape = readShape(file);
    if (shape.peers[peerName] === undefined) return false;
    delete shape.peers[peerName];
    writeShape(file, shape);
    return true;
  });
}
