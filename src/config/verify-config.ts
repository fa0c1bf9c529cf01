/**
 * The server's `[verify]` table: where the TOTP secrets live and how wrong codes are limited
 * (docs/PROTOCOL.md section 13). `[verify.oidc]` (the identity provider) is read by
 * oidc-config.ts. The secrets file resolves against the folder of `peers_file`: the daemon
 * writes it (the replay mark), and that folder is the one it may write.
 */
import path from 'node:path';
import type { TableReader } from './fields.js';
import { DEFAULT_LOCKOUT_MS, DEFAULT_MAX_ATTEMPTS } from '../verify/totp-verifier.js';

export const DEFAULT_TOTP_FILE = 'totp.json';
export const DEFAULT_TOTP_ISSUER = 'twoway';
const MAX_ATTEMPTS_BOUND = 100;
/** One second to one day. */
const LOCKOUT_MS_BOUNDS = { min: 1_000, max: 86_400_000 } as const;

export interface VerifyConfig {
  /** Absolute path of the TOTP secrets file (0600). */
  readonly totpFile: string;
  /** The issuer shown by authenticator apps. */
  readonly totpIssuer: string;
  /** Wrong codes per key before a lockout. */
  readonly maxAttempts: number;
  readonly lockoutMs: number;
}

/** Reads `[verify]` (absent: the defaults). `peersFile` is absolute. */
export function readVerifyConfig(t: TableReader | undefined, peersFile: string): VerifyConfig {
  const dir = path.dirname(peersFile);
  const file = t?.optionalString('totp_file') ?? DEFAULT_TOTP_FILE;
  const totpIssuer = t?.optionalString('totp_issuer') ?? DEFAULT_TOTP_ISSUER;
  if (t !== undefined && (totpIssuer.length === 0 || totpIssuer.length > 64 || /[:\p{Cc}\p{Cf}]/u.test(totpIssuer))) {
    throw t.fail('totp_issuer', 'expected 1-64 printable characters without ":"');
  }
  const maxAttempts = t?.int('max_attempts', DEFAULT_MAX_ATTEMPTS, { min: 1, max: MAX_ATTEMPTS_BOUND }) ?? DEFAULT_MAX_ATTEMPTS;
  const lockoutMs = t?.int('lockout_ms', DEFAULT_LOCKOUT_MS, LOCKOUT_MS_BOUNDS) ?? DEFAULT_LOCKOUT_MS;
  t?.done();
  return { totpFile: path.resolve(dir, file), totpIssuer, maxAttempts, lockoutMs };
}
