import fs from 'node:fs';
import path from 'node:path';
import { PEER_NAME, VERIFY_VALID_MS, compilePeerRules, loadPeers, savePeers, type PeerConfig, type PeerEntry, type PeerKind } from '../config/peers.js';
import { loadServerConfig } from '../config/server-config.js';
import { controlRequest } from '../control/control-client.js';
import { decodeKey, encodeKey } from '../crypto/keys.js';
import { ConfigError } from '../errors.js';
import { removeTotp } from '../verify/totp-secrets.js';

export interface PeersResult {
  readonly action: 'add' | 'set' | 'remove' | 'list';
  readonly peers: readonly PeerConfig[];
  /** What the running server answered to the reload request, or why it was not asked. */
  readonly reload?: { readonly ok: boolean; readonly detail: string };
}

/** `twoway peers list`. */
export function listPeers(serverConfigFile: string): PeersResult {
  const config = loadServerConfig(serverConfigFile);
  return { action: 'list', peers: loadPeers(config.peersFile).peers };
}

/** `twoway peers add NAME --public-key KEY [--allow RULE]... [--psk-file F] [--kind device]`. */
export async function addPeer(
  serverConfigFile: string,
  peer: {
    name: string;
    publicKey: string;
    allow: readonly string[];
    devices?: readonly string[];
    reverse?: readonly string[];
    pskFile?: string;
    kind: PeerKind;
  },
): Promise<PeersResult> {
  const config = loadServerConfig(serverConfigFile);
  if (!PEER_NAME.test(peer.name)) {
    throw new ConfigError('ERR_CONFIG', `peer name ${JSON.stringify(peer.name.slice(0, 64))}: expected 1-64 of A-Z a-z 0-9 . _ -`);
  }
  const publicKey = encodeKey(decodeKey(peer.publicKey.trim(), '--public-key'));
  compilePeerRules(peer.allow);
  const current = loadPeers(config.peersFile).peers;
  if (current.some((p) => p.name === peer.name)) throw new ConfigError('ERR_CONFIG', `${config.peersFile}: a peer named ${peer.name} exists already`);
  const clash = current.find((p) => p.publicKey === publicKey);
  if (clash) throw new ConfigError('ERR_CONFIG', `${config.peersFile}: that public key belongs to peer ${clash.name} already`);
  let pskFile: string | undefined;
  if (peer.pskFile !== undefined) {
    pskFile = path.resolve(peer.pskFile);
    if (!fs.existsSync(pskFile)) throw new ConfigError('ERR_CONFIG_FILE', `--psk-file ${pskFile} does not exist`);
  }
  const entry: PeerEntry = {
    name: peer.name,
    publicKey,
    allow: [...peer.allow],
    kind: peer.kind,
    devices: [...(peer.devices ?? [])],
    reverse: [...(peer.reverse ?? [])],
    ...(pskFile ? { pskFile } : {}),
  };
  const saved = savePeers(config.peersFile, [...current, entry]);
  return { action: 'add', peers: saved.peers, reload: await askReload(config.controlSocket) };
}

/** `twoway peers remove NAME`: the peer's sessions are closed by the reload. */
export async function removePeer(serverConfigFile: string, name: string): Promise<PeersResult> {
  const config = loadServerConfig(serverConfigFile);
  const current = loadPeers(config.peersFile).peers;
  if (!current.some((p) => p.name === name)) throw new ConfigError('ERR_CONFIG', `${config.peersFile}: no peer named ${name}`);
  const saved = savePeers(
    config.peersFile,
    current.filter((p) => p.name !== name),
  );
  // A later peer of the same name must not inherit this one's authenticator.
  if (fs.existsSync(config.verify.totpFile)) removeTotp(config.verify.totpFile, name);
  return { action: 'remove', peers: saved.peers, reload: await askReload(config.controlSocket) };
}

/**
 * What `twoway peers set NAME` changes. A list given whole (`allow`, `devices`, `reverse`) replaces
 * the peer's; `add*` and `remove*` edit it entry by entry (after a replacement, if both are given).
 */
export interface PeerChanges {
  readonly publicKey?: string;
  readonly allow?: readonly string[];
  readonly addAllow?: readonly string[];
  readonly removeAllow?: readonly string[];
  readonly devices?: readonly string[];
  readonly addDevices?: readonly string[];
  readonly removeDevices?: readonly string[];
  readonly reverse?: readonly string[];
  /** A new psk file; `null` drops the peer's psk. */
  readonly pskFile?: string | null;
  /** `--verify totp|oidc`; `null` (`--verify none`) drops the peer's verification and its settings. */
  readonly verify?: 'totp' | 'oidc' | null;
  readonly verifyValidMs?: number;
  readonly identity?: string;
}

/** The verification fields of a changed peer: the old ones, with the changes applied. */
function verifyFields(old: PeerEntry, c: PeerChanges): Pick<PeerEntry, 'verify' | 'verifyValidMs' | 'identity'> {
  if (c.verify === null) {
    if (c.verifyValidMs !== undefined || c.identity !== undefined)
      throw new ConfigError('ERR_CONFIG', '--verify none drops --verify-valid and --identity: give neither');
    return {};
  }
  const verify = c.verify ?? old.verify;
  const verifyValidMs = c.verifyValidMs ?? old.verifyValidMs;
  // An identity names the OIDC sign-in: it does not outlive a switch to another method.
  const identity = c.identity ?? (verify === 'oidc' ? old.identity : undefined);
  return {
    ...(verify !== undefined ? { verify } : {}),
    ...(verifyValidMs !== undefined ? { verifyValidMs } : {}),
    ...(identity !== undefined ? { identity } : {}),
  };
}

function editList(
  name: string,
  what: string,
  current: readonly string[],
  replace: readonly string[] | undefined,
  add: readonly string[] = [],
  remove: readonly string[] = [],
): string[] {
  const next = replace === undefined ? [...current] : [...replace];
  for (const entry of remove) {
    const at = next.indexOf(entry);
    if (at < 0) throw new ConfigError('ERR_CONFIG', `peer ${name} has no ${what} ${JSON.stringify(entry.slice(0, 80))} to remove`);
    next.splice(at, 1);
  }
  for (const entry of add) if (!next.includes(entry)) next.push(entry);
  return next;
}

/**
 * `twoway peers set NAME ...`: changes an existing peer in place. The reload keeps the peer's
 * sessions; streams it may no longer reach are reset. A new psk applies from its next handshake;
 * a new public key closes the old key's sessions (the reload drops keys no longer listed).
 */
export async function setPeer(serverConfigFile: string, name: string, changes: PeerChanges): Promise<PeersResult> {
  const config = loadServerConfig(serverConfigFile);
  const current = loadPeers(config.peersFile).peers;
  const old = current.find((p) => p.name === name);
  if (old === undefined) throw new ConfigError('ERR_CONFIG', `${config.peersFile}: no peer named ${name}`);
  const publicKey = changes.publicKey === undefined ? old.publicKey : encodeKey(decodeKey(changes.publicKey.trim(), '--public-key'));
  const clash = current.find((p) => p.publicKey === publicKey && p.name !== name);
  if (clash) throw new ConfigError('ERR_CONFIG', `${config.peersFile}: that public key belongs to peer ${clash.name} already`);
  const allow = editList(name, 'allow rule', old.allow, changes.allow, changes.addAllow, changes.removeAllow);
  compilePeerRules(allow);
  const devices = editList(name, 'device rule', old.devices, changes.devices, changes.addDevices, changes.removeDevices);
  const reverse = changes.reverse === undefined ? [...old.reverse] : [...changes.reverse];
  let pskFile = old.pskFile;
  if (changes.pskFile === null) pskFile = undefined;
  else if (changes.pskFile !== undefined) {
    pskFile = path.resolve(changes.pskFile);
    if (!fs.existsSync(pskFile)) throw new ConfigError('ERR_CONFIG_FILE', `--psk-file ${pskFile} does not exist`);
  }
  const entry: PeerEntry = {
    name,
    publicKey,
    allow,
    kind: old.kind,
    devices,
    reverse,
    ...(pskFile ? { pskFile } : {}),
    ...(old.pending ? { pending: true } : {}),
    ...verifyFields(old, changes),
  };
  const saved = savePeers(
    config.peersFile,
    current.map((p) => (p.name === name ? entry : p)),
  );
  return { action: 'set', peers: saved.peers, reload: await askReload(config.controlSocket) };
}

export async function askReload(controlSocket: string): Promise<{ ok: boolean; detail: string }> {
  if (!fs.existsSync(controlSocket)) return { ok: false, detail: `no server running at ${controlSocket}; the change applies when it starts` };
  try {
    const reply = await controlRequest(controlSocket, { cmd: 'reload' });
    return reply.ok
      ? { ok: true, detail: 'the running server reloaded its allowlist' }
      : { ok: false, detail: `the running server refused the reload: ${String(reply.error)}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

export function formatPeersResult(result: PeersResult): string {
  const lines: string[] = [];
  if (result.action === 'list') {
    for (const p of result.peers) {
      lines.push(
        `peer: ${p.name} (${p.kind})`,
        `  public key: ${p.publicKey}`,
        `  psk: ${p.pskFile ? 'yes' : 'no'}`,
        `  allow: ${p.allow.length ? p.allow.join(', ') : '(nothing)'}`,
      );
      if (p.devices.length) lines.push(`  devices: ${p.devices.join(', ')}`);
      if (p.reverse.length) lines.push(`  reverse: ${p.reverse.join(', ')}`);
      if (p.verify) lines.push(`  verify: ${p.verify}, valid ${p.verifyValidMs ?? VERIFY_VALID_MS} ms${p.identity ? `, identity ${p.identity}` : ''}`);
      if (p.pending === true) lines.push(`  pending: waiting for approval (twoway peers approve ${p.name})`);
      lines.push('');
    }
    if (result.peers.length === 0) lines.push('no peers', '');
  } else {
    const done = result.action === 'add' ? 'added' : result.action === 'set' ? 'changed' : 'removed';
    lines.push(`${done}; ${result.peers.length} peers on the allowlist`);
    if (result.reload) lines.push(result.reload.detail);
    lines.push('');
  }
  return lines.join('\n');
}
