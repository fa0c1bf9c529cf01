/**
 * `twoway check-config FILE`: tells a server, client or peers file apart by its top-level table
 * and validates it fully, including the files it names (key files exist, hold one key and have
 * safe modes; the server's peers file and every peer's psk file). Keys read here are wiped at once.
 */
import * as fs from 'node:fs';
import { ConfigError, assertNever } from '../errors.js';
import { readClientTable, type ClientConfig, type LoadClientOptions } from './client-config.js';
import { checkSecretFile, readPrivateKeyFile, readPskFile, type SecretFileOwner } from './key-file.js';
import { loadPeers, readPeersTable, type PeersConfig } from './peers.js';
import { readServerTable, type ServerConfig } from './server-config.js';
import { readTomlFile } from './toml-file.js';
import type { TomlTable } from './fields.js';

export type ConfigKind = 'server' | 'client' | 'peers';

export type CheckedConfig =
  | { readonly kind: 'server'; readonly config: ServerConfig; readonly peers: PeersConfig; readonly filesChecked: readonly string[] }
  | { readonly kind: 'client'; readonly config: ClientConfig; readonly filesChecked: readonly string[] }
  | { readonly kind: 'peers'; readonly config: PeersConfig; readonly filesChecked: readonly string[] };

/** Which kind of file a parsed document is, by its top-level table. */
export function detectConfigKind(file: string, table: TomlTable): ConfigKind {
  const kinds: ConfigKind[] = [];
  if ('server' in table) kinds.push('server');
  if ('client' in table) kinds.push('client');
  if ('peer' in table) kinds.push('peers');
  if (kinds.length === 1) return kinds[0] as ConfigKind;
  if (kinds.length === 0) {
    throw new ConfigError('ERR_CONFIG', `${file}: cannot tell what this file is: expected a [server] table, a [client] table or [[peer]] tables`);
  }
  throw new ConfigError('ERR_CONFIG', `${file}: mixes ${kinds.map((k) => (k === 'peers' ? '[[peer]]' : `[${k}]`)).join(' and ')}; use one file for each`);
}

function readKey(path: string, reader: (p: string, owner?: SecretFileOwner) => Uint8Array, owner: SecretFileOwner | undefined): void {
  reader(path, owner).fill(0);
}

function checkReadable(path: string, what: string): void {
  try {
    const stat = fs.statSync(path);
    if (!stat.isFile()) throw new ConfigError('ERR_CONFIG_FILE', `${what} ${path}: not a regular file`);
    fs.accessSync(path, fs.constants.R_OK);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError('ERR_CONFIG_FILE', `${what} ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? 'error'})`}`, { cause: err });
  }
}

function checkPeerPsks(peers: PeersConfig, requirePsk: boolean, checked: string[], owner: SecretFileOwner | undefined): void {
  peers.peers.forEach((peer, i) => {
    if (peer.pskFile === undefined) {
      if (requirePsk) throw new ConfigError('ERR_CONFIG', `${peers.file}: [peer.${i + 1}] (${peer.name}): require_psk is set but the peer has no psk_file`);
      return;
    }
    readKey(peer.pskFile, readPskFile, owner);
    checked.push(peer.pskFile);
  });
}

export interface CheckConfigOptions extends LoadClientOptions {
  /** Whose key files these are (the daemon's user, `--user`); default: the user running the check. */
  readonly owner?: SecretFileOwner;
}

/**
 * Validates `file` completely. Returns what was found; throws the first ConfigError.
 * `env` is only used for a client file's defaults (proxy, control socket).
 */
export function checkConfig(file: string, options: CheckConfigOptions = {}): CheckedConfig {
  const owner = options.owner;
  const table = readTomlFile(file);
  const kind = detectConfigKind(file, table);
  const checked: string[] = [file];
  switch (kind) {
    case 'server': {
      const config = readServerTable(file, table);
      readKey(config.privateKeyFile, readPrivateKeyFile, owner);
      checked.push(config.privateKeyFile);
      if (config.tls !== undefined) {
        checkReadable(config.tls.certFile, 'TLS certificate file');
        checkSecretFile(config.tls.keyFile, 'TLS private key', owner);
        checked.push(config.tls.certFile, config.tls.keyFile);
      }
      const peers = loadPeers(config.peersFile);
      checked.push(config.peersFile);
      checkPeerPsks(peers, config.requirePsk, checked, owner);
      return { kind, config, peers, filesChecked: checked };
    }
    case 'client': {
      const config = readClientTable(file, table, options);
      readKey(config.privateKeyFile, readPrivateKeyFile, owner);
      checked.push(config.privateKeyFile);
      if (config.pskFile !== undefined) {
        readKey(config.pskFile, readPskFile, owner);
        checked.push(config.pskFile);
      }
      if (config.caFile !== undefined) {
        checkReadable(config.caFile, 'CA file');
        checked.push(config.caFile);
      }
      return { kind, config, filesChecked: checked };
    }
    case 'peers': {
      const config = readPeersTable(file, table);
      checkPeerPsks(config, false, checked, owner);
      return { kind, config, filesChecked: checked };
    }
    default:
      return assertNever(kind, 'config kind');
  }
}
