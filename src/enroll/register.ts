/**
 * The peers-file side of enrollment: a joined key appended to the allowlist, and an
 * administrator's approval of a pending one. Both are read-modify-write cycles of the peers file
 * under its lock (lib/atomic-file.ts), so a join in the daemon and a `twoway peers` edit by the
 * administrator never lose each other's change.
 */
import { ConfigError } from '../errors.js';
import { statIfExists, withFileLock } from '../lib/atomic-file.js';
import { loadPeers, savePeers, type PeerConfig, type PeerEntry } from '../config/peers.js';
import type { InviteVerify } from './invites-store.js';

export interface Registration {
  readonly name: string;
  /** Canonical base64 of the joined key. */
  readonly publicKey: string;
  readonly allow: readonly string[];
  readonly devices: readonly string[];
  readonly verify?: InviteVerify;
  readonly pending: boolean;
}

/** Why a registration was refused, in the join answer's words. */
export type RegisterRefusal = 'name-taken' | 'key-taken';

export class RegisterRefused extends ConfigError {
  readonly reason: RegisterRefusal;
  constructor(reason: RegisterRefusal, message: string) {
    super('ERR_CONFIG', message);
    this.reason = reason;
  }
}

function locked<T>(file: string, fn: () => T): T {
  try {
    return withFileLock(file, fn);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw new ConfigError('ERR_CONFIG_FILE', `${file}: another writer holds its lock`, { cause: err });
    throw err;
  }
}

function current(file: string): readonly PeerConfig[] {
  return statIfExists(file) === undefined ? [] : loadPeers(file).peers;
}

/**
 * Appends the joined peer (kind user) to the peers file. Throws RegisterRefused when the name or
 * the key is on the allowlist already, a ConfigError when the file cannot be read or written.
 */
export function registerPeer(peersFile: string, reg: Registration): PeerEntry {
  return locked(peersFile, () => {
    const peers = current(peersFile);
    if (peers.some((p) => p.name === reg.name)) throw new RegisterRefused('name-taken', `a peer named ${reg.name} is on the allowlist already`);
    const clash = peers.find((p) => p.publicKey === reg.publicKey);
    if (clash !== undefined) throw new RegisterRefused('key-taken', `this key belongs to peer ${clash.name} already`);
    // `verify` is a peer field of the verification layer (docs/PROTOCOL.md §13): written when the
    // peers file knows it.
    const entry: PeerEntry & { verify?: InviteVerify } = {
      name: reg.name,
      publicKey: reg.publicKey,
      allow: [...reg.allow],
      kind: 'user',
      devices: [...reg.devices],
      reverse: [],
      ...(reg.verify !== undefined ? { verify: reg.verify } : {}),
      ...(reg.pending ? { pending: true } : {}),
    };
    savePeers(peersFile, [...peers, entry]);
    return entry;
  });
}

/** `twoway peers approve NAME`: drops `pending` from the peer. Throws when it is not pending. */
export function approvePeer(peersFile: string, name: string): readonly PeerConfig[] {
  return locked(peersFile, () => {
    const peers = current(peersFile);
    const peer = peers.find((p) => p.name === name);
    if (peer === undefined) throw new ConfigError('ERR_CONFIG', `${peersFile}: no peer named ${name}`);
    if (peer.pending !== true) throw new ConfigError('ERR_CONFIG', `${peersFile}: peer ${name} is not waiting for approval`);
    const { pending: _dropped, ...approved } = peer;
    return savePeers(
      peersFile,
      peers.map((p) => (p.name === name ? approved : p)),
    ).peers;
  });
}
