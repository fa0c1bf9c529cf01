/**
 * The server's runtime allowlist: public key -> peer, with its psk and compiled access rules.
 * Built by the CLI from the peers file; replaced whole on reload.
 */
import type { PeerEntry } from '../session/listen-secure.js';
import type { AccessRules } from './access-rules.js';
import type { DeviceRules } from './device-rules.js';

/** A reverse listener a device owns: the server listens on host:port for `service`. */
export interface ReverseListen {
  readonly service: string;
  readonly host: string;
  readonly port: number;
}

export interface ServerPeer extends PeerEntry {
  readonly kind: 'user' | 'device';
  readonly rules: AccessRules;
  /** Device services this peer may reach. */
  readonly devices: DeviceRules;
  /** For a device: its reverse listeners. */
  readonly reverse: readonly ReverseListen[];
  /** The person must verify before any stream opens (`verify`; docs/PROTOCOL.md section 13). */
  readonly verify?: PeerVerification;
}

/** A peer's `verify`, `verify_valid_ms` and `identity`. */
export interface PeerVerification {
  readonly method: 'totp' | 'oidc';
  /** How long a verification lasts across reconnects of the key. */
  readonly validMs: number;
  /** OIDC: the identity that must sign in with this key. */
  readonly identity?: string;
}

export class ServerPeers {
  readonly #byKey = new Map<string, ServerPeer>();
  readonly #devices = new Map<string, ServerPeer>();

  constructor(peers: readonly ServerPeer[]) {
    for (const peer of peers) {
      this.#byKey.set(Buffer.from(peer.publicKey).toString('base64'), peer);
      if (peer.kind === 'device') this.#devices.set(peer.name, peer);
    }
  }

  get size(): number {
    return this.#byKey.size;
  }

  lookup(publicKey: Uint8Array): ServerPeer | undefined {
    if (publicKey.length !== 32) return undefined;
    return this.#byKey.get(Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.length).toString('base64'));
  }

  /** The device peer named `name`, if any. */
  device(name: string): ServerPeer | undefined {
    return this.#devices.get(name);
  }

  names(): string[] {
    return [...this.#byKey.values()].map((p) => p.name);
  }

  /** Names of the peers waiting for an administrator's approval. */
  pendingNames(): Set<string> {
    return new Set([...this.#byKey.values()].filter((p) => p.pending === true).map((p) => p.name));
  }
}
