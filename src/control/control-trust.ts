/**
 * Whether a control socket may be trusted with a target and its bytes (issue 13 item 10): a
 * socket that another local user bound first would receive both. Trusted is a socket that no
 * other uid can have put there:
 *   - its folder is owned by us or root and nobody else may write it (no group/other write,
 *     so no sticky /tmp), and the socket is ours or root's; or
 *   - the folder belongs to the socket's owner (a service user such as `twoway`), nobody else may
 *     write it, and its parent is root's and writable by root only: a folder only root can have
 *     made, such as the system unit's RuntimeDirectory /run/twoway.
 */
import fs from 'node:fs';
import path from 'node:path';

export type SocketTrust =
  { readonly kind: 'absent' } | { readonly kind: 'not-a-socket' } | { readonly kind: 'trusted' } | { readonly kind: 'untrusted'; readonly why: string };

const GROUP_OR_OTHER_WRITE = 0o022;

export function controlSocketTrust(socketPath: string, uid: number): SocketTrust {
  let socket: fs.Stats;
  try {
    socket = fs.lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    return { kind: 'untrusted', why: `cannot be examined (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  if (socket.isSymbolicLink()) return { kind: 'untrusted', why: 'is a symbolic link' };
  if (!socket.isSocket()) return { kind: 'not-a-socket' };
  let dirPath: string;
  let dir: fs.Stats;
  try {
    dirPath = fs.realpathSync(path.dirname(socketPath));
    dir = fs.statSync(dirPath);
  } catch {
    return { kind: 'untrusted', why: 'its folder cannot be examined' };
  }
  if ((dir.mode & GROUP_OR_OTHER_WRITE) !== 0) {
    return { kind: 'untrusted', why: `is in ${dirPath}, a folder others may write (mode ${(dir.mode & 0o7777).toString(8).padStart(4, '0')})` };
  }
  const mine = (owner: number): boolean => owner === uid || owner === 0;
  if (mine(dir.uid)) {
    if (mine(socket.uid)) return { kind: 'trusted' };
    return { kind: 'untrusted', why: `is owned by uid ${socket.uid}, not by uid ${uid} or root` };
  }
  // A service user's folder: trusted only where root alone could have created it.
  if (socket.uid === dir.uid) {
    try {
      const parent = fs.statSync(path.dirname(dirPath));
      if (parent.uid === 0 && (parent.mode & GROUP_OR_OTHER_WRITE) === 0) return { kind: 'trusted' };
    } catch {
      // fall through: not shown to be root's
    }
    return { kind: 'untrusted', why: `is in ${dirPath}, owned by uid ${dir.uid}, in a folder that is not root's alone` };
  }
  return { kind: 'untrusted', why: `is owned by uid ${socket.uid}, in ${dirPath} owned by uid ${dir.uid}` };
}
