/**
 * The `listen` of client forwards and SOCKS5 listeners: `host:port`, or a unix socket as
 * `unix:PATH` or an absolute path (a relative `unix:` path resolves against the config file's
 * folder). TCP listeners take `allow_other_users` and `allow_uids` (src/forward/local-listener.ts).
 */
import path from 'node:path';
import type { LocalAccess, LocalListen } from '../forward/local-listener.js';
import { MAX_UNIX_PATH_BYTES } from '../forward/local-listener.js';
import type { TableReader } from './fields.js';
import { parseListen } from './listen-address.js';

export const MAX_ALLOW_UIDS = 1_024;
const MAX_UID = 2 ** 32 - 2;

/**
 * Parses a local listen address; `base` (a config file) anchors relative unix paths, without it
 * they resolve against the working directory. Throws a plain Error naming the expected forms.
 */
export function parseLocalListen(text: string, base?: string): LocalListen {
  if (text.startsWith('unix:') || text.startsWith('/')) {
    const raw = text.startsWith('unix:') ? text.slice(5) : text;
    if (raw === '' || raw.includes('\0')) throw new Error(`expected a unix socket path after "unix:", got ${JSON.stringify(text.slice(0, 64))}`);
    const resolved = base === undefined ? path.resolve(raw) : path.resolve(path.dirname(path.resolve(base)), raw);
    if (Buffer.byteLength(resolved) > MAX_UNIX_PATH_BYTES)
      throw new Error(`a unix socket path is at most ${MAX_UNIX_PATH_BYTES} bytes, got ${Buffer.byteLength(resolved)}`);
    return { path: resolved };
  }
  try {
    return parseListen(text, true);
  } catch {
    throw new Error(`expected "host:port" (IPv6 as "[::1]:port"), "unix:PATH" or an absolute path, got ${JSON.stringify(text.slice(0, 64))}`);
  }
}

/** Reads `listen`, `allow_other_users` and `allow_uids` of a [[forward]] or [[socks]] table. */
export function readLocalListener(t: TableReader): { listen: LocalListen; access: LocalAccess } {
  const text = t.optionalString('listen');
  if (text === undefined) throw t.fail('listen', 'required key is missing');
  let listen: LocalListen;
  try {
    listen = parseLocalListen(text, t.file);
  } catch (err) {
    throw t.fail('listen', (err as Error).message);
  }
  const allowOtherUsers = t.boolean('allow_other_users', false);
  const uids = t.raw('allow_uids');
  let allowUids: number[] = [];
  if (uids !== undefined) {
    if (!Array.isArray(uids) || uids.length > MAX_ALLOW_UIDS)
      throw t.fail('allow_uids', `expected a list of at most ${MAX_ALLOW_UIDS} numeric uids, e.g. [1000]`);
    uids.forEach((u, i) => {
      if (typeof u !== 'number' || !Number.isSafeInteger(u) || u < 0 || u > MAX_UID)
        throw t.fail(`allow_uids[${i}]`, `expected a numeric uid in 0..${MAX_UID}, got ${JSON.stringify(typeof u === 'bigint' ? String(u) : u)}`);
    });
    allowUids = uids as number[];
  }
  if ('path' in listen && (allowOtherUsers || uids !== undefined)) {
    throw t.fail(allowOtherUsers ? 'allow_other_users' : 'allow_uids', 'applies to TCP listeners only: a unix socket is mode 0600, for this user alone');
  }
  return { listen, access: { allowOtherUsers, allowUids } };
}
