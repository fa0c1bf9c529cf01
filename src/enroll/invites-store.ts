/**
 * The server's invitations (`[server] invites_file`, default invites.json beside the peers file):
 * a JSON file of mode 0600 owned by the service user, because it holds each open invitation's
 * join psk (the token's secret stays with the token; the psk alone cannot be turned back into it).
 *
 *   {"version":1,"invites":[{"id","name","psk","created_at","expires_at","allow","devices",
 *     "verify"?,"approval","state":"open"|"used"|"revoked","used_at"?,"used_by"?,"revoked_at"?}]}
 *
 * Every change is a locked read-modify-write renamed into place (lib/atomic-file.ts): the CLI
 * (`twoway invite`, `twoway invites revoke`) and the daemon (a join) both write. An invitation is
 * used once: `claimInvite` marks it under the lock before the peer is registered.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { ConfigError } from '../errors.js';
import type { JoinRefusalReason } from '../session/refusal-log.js';
import { withFileLock, writeFileAtomic } from '../lib/atomic-file.js';
import { INVITE_ID_BYTES, INVITE_SECRET_BYTES, inviteIdText, invitePsk } from './invite-token.js';

export const INVITES_FILE_MODE = 0o600;
/** Invitations kept in the file, open and closed. */
export const MAX_INVITES = 1_000;
/** A used, revoked or expired invitation is dropped from the file this long after it closed. */
export const CLOSED_INVITE_KEPT_MS = 7 * 24 * 3_600_000;
export const DEFAULT_INVITE_EXPIRY_MS = 24 * 3_600_000;
export const MAX_INVITE_EXPIRY_MS = 30 * 24 * 3_600_000;

export type InviteVerify = 'totp' | 'oidc';
export type InviteState = 'open' | 'used' | 'revoked';
/** What `twoway invites list` shows: the stored state, or `expired` for an open one past its time. */
export type InviteStatus = InviteState | 'expired';

/** One invitation as stored (without its psk, which stays inside this module and the daemon). */
export interface InviteRecord {
  /** base64url of the 16-byte invite id. */
  readonly id: string;
  /** The peer name the join registers. */
  readonly name: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly allow: readonly string[];
  readonly devices: readonly string[];
  readonly verify?: InviteVerify;
  /** The joined key waits for `twoway peers approve NAME`. */
  readonly approval: boolean;
  readonly state: InviteState;
  readonly usedAt?: string;
  /** Fingerprint of the key that joined. */
  readonly usedBy?: string;
  readonly revokedAt?: string;
}

interface StoredInvite {
  id: string;
  name: string;
  psk: string;
  created_at: string;
  expires_at: string;
  allow: string[];
  devices: string[];
  verify?: InviteVerify;
  approval: boolean;
  state: InviteState;
  used_at?: string;
  used_by?: string;
  revoked_at?: string;
}

interface FileShape {
  version: 1;
  invites: StoredInvite[];
}

function fileError(file: string, err: unknown): ConfigError {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  return new ConfigError('ERR_CONFIG_FILE', `${file}: invitations could not be read or written (${code})`, { cause: err });
}

const ID_TEXT = /^[A-Za-z0-9_-]{22}$/;
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isDate = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

function validEntry(e: Partial<StoredInvite> | null | undefined): boolean {
  return (
    e !== null &&
    typeof e === 'object' &&
    typeof e.id === 'string' &&
    ID_TEXT.test(e.id) &&
    typeof e.name === 'string' &&
    typeof e.psk === 'string' &&
    isDate(e.created_at) &&
    isDate(e.expires_at) &&
    isStrings(e.allow) &&
    isStrings(e.devices) &&
    (e.verify === undefined || e.verify === 'totp' || e.verify === 'oidc') &&
    typeof e.approval === 'boolean' &&
    (e.state === 'open' || e.state === 'used' || e.state === 'revoked')
  );
}

function readShape(file: string): FileShape {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if ((stat.mode & 0o077) !== 0)
      throw new ConfigError('ERR_KEY_FILE_MODE', `${file}: the invitations file must not be readable by group or others (chmod 600)`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, invites: [] };
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
  if (shape === null || typeof shape !== 'object' || shape.version !== 1 || !Array.isArray(shape.invites) || shape.invites.length > MAX_INVITES) {
    throw new ConfigError('ERR_CONFIG_FILE', `${file}: expected {"version":1,"invites":[...]} with at most ${MAX_INVITES} entries`);
  }
  shape.invites.forEach((e, i) => {
    if (!validEntry(e)) throw new ConfigError('ERR_CONFIG_FILE', `${file}: invites[${i}]: malformed entry (content not shown)`);
  });
  return shape as FileShape;
}

function writeShape(file: string, shape: FileShape): void {
  try {
    writeFileAtomic(file, `${JSON.stringify(shape, null, 2)}\n`, { mode: INVITES_FILE_MODE, forceMode: true, ownerOfDir: true });
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

function statusOf(e: StoredInvite, now: Date): InviteStatus {
  if (e.state !== 'open') return e.state;
  return now.getTime() >= Date.parse(e.expires_at) ? 'expired' : 'open';
}

/** When a closed invitation closed (used, revoked, expired); undefined while open. */
function closedAt(e: StoredInvite, now: Date): number | undefined {
  if (e.state === 'used') return Date.parse(e.used_at ?? e.expires_at);
  if (e.state === 'revoked') return Date.parse(e.revoked_at ?? e.expires_at);
  const expires = Date.parse(e.expires_at);
  return now.getTime() >= expires ? expires : undefined;
}

function toRecord(e: StoredInvite): InviteRecord {
  return {
    id: e.id,
    name: e.name,
    createdAt: e.created_at,
    expiresAt: e.expires_at,
    allow: [...e.allow],
    devices: [...e.devices],
    ...(e.verify !== undefined ? { verify: e.verify } : {}),
    approval: e.approval,
    state: e.state,
    ...(e.used_at !== undefined ? { usedAt: e.used_at } : {}),
    ...(e.used_by !== undefined ? { usedBy: e.used_by } : {}),
    ...(e.revoked_at !== undefined ? { revokedAt: e.revoked_at } : {}),
  };
}

export interface NewInvite {
  readonly name: string;
  readonly allow: readonly string[];
  readonly devices: readonly string[];
  readonly verify?: InviteVerify;
  readonly approval: boolean;
  readonly expiresInMs: number;
}

/**
 * Creates an invitation and returns it with its id and secret (for the token; the secret is not
 * stored). Refuses a second open invitation for one name; closed ones past CLOSED_INVITE_KEPT_MS
 * are dropped first, and the file holds at most MAX_INVITES.
 */
export function createInvite(file: string, spec: NewInvite, now: Date = new Date()): { record: InviteRecord; id: Uint8Array; secret: Uint8Array } {
  if (!(spec.expiresInMs > 0 && spec.expiresInMs <= MAX_INVITE_EXPIRY_MS)) {
    throw new ConfigError('ERR_CONFIG', `--expires: expected more than 0 and at most 30 days, got ${spec.expiresInMs} ms`);
  }
  const id = new Uint8Array(randomBytes(INVITE_ID_BYTES));
  const secret = new Uint8Array(INVITE_SECRET_BYTES);
  secret.set(randomBytes(INVITE_SECRET_BYTES));
  const psk = invitePsk(secret);
  const entry: StoredInvite = {
    id: inviteIdText(id),
    name: spec.name,
    psk: Buffer.from(psk).toString('base64'),
    created_at: now.toISOString(),
    expires_at: new Date(now.getTime() + spec.expiresInMs).toISOString(),
    allow: [...spec.allow],
    devices: [...spec.devices],
    ...(spec.verify !== undefined ? { verify: spec.verify } : {}),
    approval: spec.approval,
    state: 'open',
  };
  psk.fill(0);
  locked(file, () => {
    const shape = readShape(file);
    shape.invites = shape.invites.filter((e) => {
      const closed = closedAt(e, now);
      return closed === undefined || now.getTime() - closed < CLOSED_INVITE_KEPT_MS;
    });
    if (shape.invites.some((e) => e.name === spec.name && statusOf(e, now) === 'open')) {
      throw new ConfigError('ERR_CONFIG', `${file}: an open invitation for ${spec.name} exists already (twoway invites revoke ${spec.name} first)`);
    }
    if (shape.invites.length >= MAX_INVITES) {
      throw new ConfigError('ERR_CONFIG', `${file}: ${MAX_INVITES} invitations already (revoke some; closed ones are dropped after 7 days)`);
    }
    shape.invites.push(entry);
    writeShape(file, shape);
  });
  return { record: toRecord(entry), id, secret };
}

/** Every invitation in the file, with its status at `now`. */
export function listInvites(file: string, now: Date = new Date()): Array<InviteRecord & { readonly status: InviteStatus }> {
  return readShape(file).invites.map((e) => ({ ...toRecord(e), status: statusOf(e, now) }));
}

/** Revokes the open invitations whose id or name is `idOrName`; throws when there is none. */
export function revokeInvite(file: string, idOrName: string, now: Date = new Date()): InviteRecord[] {
  return locked(file, () => {
    const shape = readShape(file);
    const hits = shape.invites.filter((e) => (e.id === idOrName || e.name === idOrName) && statusOf(e, now) === 'open');
    if (hits.length === 0) throw new ConfigError('ERR_CONFIG', `${file}: no open invitation with the id or name ${JSON.stringify(idOrName.slice(0, 64))}`);
    for (const e of hits) {
      e.state = 'revoked';
      e.revoked_at = now.toISOString();
    }
    writeShape(file, shape);
    return hits.map(toRecord);
  });
}

/** Why the server refuses a join handshake (the refusal log's reason). */
export type JoinRefusal = JoinRefusalReason;

/** An open invitation as the join handshake needs it. */
export interface OpenInvite {
  readonly record: InviteRecord;
  /** The join handshake's psk (32 bytes; the caller wipes it when done). */
  readonly psk: Uint8Array;
}

function refusalOf(status: Exclude<InviteStatus, 'open'>): JoinRefusal {
  return status === 'expired' ? 'invite-expired' : status === 'used' ? 'invite-used' : 'invite-revoked';
}

/** Looks up an invitation by its 16-byte id, for the handshake (no lock: a read of one file). */
export function lookupInvite(file: string, id: Uint8Array, now: Date = new Date()): { ok: true; invite: OpenInvite } | { ok: false; reason: JoinRefusal } {
  if (id.length !== INVITE_ID_BYTES) return { ok: false, reason: 'invite-unknown' };
  const text = inviteIdText(id);
  const entry = readShape(file).invites.find((e) => e.id === text);
  if (entry === undefined) return { ok: false, reason: 'invite-unknown' };
  const status = statusOf(entry, now);
  if (status !== 'open') return { ok: false, reason: refusalOf(status) };
  const psk = new Uint8Array(Buffer.from(entry.psk, 'base64'));
  if (psk.length !== 32) return { ok: false, reason: 'invite-unknown' };
  return { ok: true, invite: { record: toRecord(entry), psk } };
}

/**
 * Marks the invitation `id` used by `usedBy` (a key fingerprint), then runs `register` with it,
 * all under the file's lock: of two joins with one token exactly one gets past the mark. When
 * `register` throws, the mark is taken back and the error passes on.
 */
export function claimInvite<T>(
  file: string,
  id: string,
  usedBy: string,
  register: (record: InviteRecord) => T,
  now: Date = new Date(),
): { ok: true; value: T } | { ok: false; reason: JoinRefusal } {
  return locked(file, () => {
    const shape = readShape(file);
    const entry = shape.invites.find((e) => e.id === id);
    if (entry === undefined) return { ok: false, reason: 'invite-unknown' } as const;
    const status = statusOf(entry, now);
    if (status !== 'open') return { ok: false, reason: refusalOf(status) } as const;
    entry.state = 'used';
    entry.used_at = now.toISOString();
    entry.used_by = usedBy;
    writeShape(file, shape);
    try {
      return { ok: true, value: register(toRecord(entry)) } as const;
    } catch (err) {
      entry.state = 'open';
      delete entry.used_at;
      delete entry.used_by;
      writeShape(file, shape);
      throw err;
    }
  });
}
