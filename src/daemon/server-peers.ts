/**
 * The server's runtime allowlist: public key -> peer, with its psk and compiled access rules.
 * Built by the CLI from the peers file; replaced whole on reload.
 */
import type { PeerEntry } from '../session/server.js';
import type { AccessRules } from '../policy/access-rules.js';

export interface ServerPeer extends PeerEntry {
  readonly kind: 'user' | 'device';
  readonly rules: AccessRules;
}

export class ServerPeers {
  readonly #byKey = new Map<string, ServerPeer>();

  constructor(peers: readonly ServerPeer[]) {
    for (const peer of peers) this.#byKey.set(Buffer.from(peer.publicKey).toString('base64'), peer);
  }

  get size(): number {
    return this.#byKey.size;
  }

  lookup(publicKey: Uint8Array): ServerPeer | undefined {
    if (publicKey.length !== 32) return undefined;
    return this.#byKey.get(Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.length).toString('base64'));
  }

  names(): string[] {
    return [...this.#byKey.values()].map((p) => p.name);
  }
}
