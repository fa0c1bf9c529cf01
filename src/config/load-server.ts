/**
 * What a server config names, read into what the server daemon takes: its key pair, the
 * allowlist (peers file, psk files, rules already compiled by the peers loader) and TLS files.
 */
import fs from 'node:fs';
import { VERIFY_VALID_MS, loadPeers } from './peers.js';
import { checkSecretFile, readPrivateKeyFile, readPskFile } from './key-file.js';
import type { ServerConfig } from './server-config.js';
import { decodeKey, publicKeyFromPrivate, type KeyPair } from '../crypto/keys.js';
import { ConfigError } from '../errors.js';
import { ServerPeers, type ServerPeer } from '../policy/peer-table.js';

/** Reads the server's private key file into a key pair. */
export function loadKeyPair(privateKeyFile: string): KeyPair {
  const privateKey = readPrivateKeyFile(privateKeyFile);
  return { privateKey, publicKey: publicKeyFromPrivate(privateKey) };
}

/**
 * Reads the peers file (whose loader compiles every rule) and every psk file it names, so
 * that a broken file is refused as a whole (the old allowlist stays in force on reload).
 */
export function loadServerPeers(config: ServerConfig): ServerPeers {
  const file = loadPeers(config.peersFile);
  const peers: ServerPeer[] = file.peers.map((peer, i) => {
    const where = `${file.file}: [peer.${i + 1}] (${peer.name})`;
    if (config.requirePsk && peer.pskFile === undefined) {
      throw new ConfigError('ERR_CONFIG', `${where}: require_psk is set but the peer has no psk_file`);
    }
    return {
      name: peer.name,
      publicKey: decodeKey(peer.publicKey, `${where}: public_key`),
      ...(peer.pskFile !== undefined ? { psk: readPskFile(peer.pskFile) } : {}),
      kind: peer.kind,
      rules: peer.rules,
      devices: peer.deviceRules,
      reverse: peer.reverseListeners,
      ...(peer.verify !== undefined
        ? {
            verify: {
              method: peer.verify,
              validMs: peer.verifyValidMs ?? VERIFY_VALID_MS,
              ...(peer.identity !== undefined ? { identity: peer.identity } : {}),
            },
          }
        : {}),
      ...(peer.pending === true ? { pending: true } : {}),
    };
  });
  return new ServerPeers(peers);
}

/** Reads the TLS certificate and key for wss:// when configured. */
export function loadTls(config: ServerConfig): { cert: Buffer; key: Buffer } | undefined {
  if (config.tls === undefined) return undefined;
  const read = (file: string, what: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new ConfigError('ERR_CONFIG_FILE', `${what} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
  };
  checkSecretFile(config.tls.keyFile, 'TLS private key');
  return { cert: read(config.tls.certFile, 'TLS certificate file'), key: read(config.tls.keyFile, 'TLS private key file') };
}
