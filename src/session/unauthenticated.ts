/**
 * Bookkeeping for connections that have not yet confirmed their keys: the global and per-address
 * caps (SECURITY.md #8: file-descriptor limits protect nothing) and the absolute handshake
 * deadline from TCP accept to key confirmation. Pings, slow headers and partial handshakes do not
 * extend it.
 */
import type { TransportConnection } from '../transport/ws-listen.js';
import type { SessionLimits } from './session-limits.js';
import { addressKey } from './rate-limit.js';

/** What the server knows about one connection while it is unauthenticated. */
export interface PendingConnection {
  readonly connection: TransportConnection;
  /**
   * The per-address key it counts under; undefined while a trusted proxy's client address is
   * still to come (X-Forwarded-For): such a connection counts only toward the global cap until
   * `readdress` at its upgrade.
   */
  addressKey: string | undefined;
  /** Fingerprint once message 1 revealed the client's key. */
  fingerprint?: string;
  /** Set once a refusal was logged, so one connection logs at most one refusal. */
  refusalLogged: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class UnauthenticatedConnections {
  readonly #limits: SessionLimits;
  readonly #onDeadline: (pending: PendingConnection) => void;
  readonly #pending = new Map<TransportConnection, PendingConnection>();
  readonly #perAddress = new Map<string, number>();

  constructor(limits: SessionLimits, onDeadline: (pending: PendingConnection) => void) {
    this.#limits = limits;
    this.#onDeadline = onDeadline;
  }

  /** Counts a new connection and arms its deadline, or names the cap that refuses it. */
  admit(connection: TransportConnection): PendingConnection | 'global-cap' | 'address-cap' {
    if (this.#pending.size >= this.#limits.maxUnauthenticated) return 'global-cap';
    let key: string | undefined;
    if (connection.addressPending !== true) {
      key = addressKey(connection.remoteIp);
      if (!this.#count(key)) return 'address-cap';
    }
    const pending: PendingConnection = { connection, addressKey: key, refusalLogged: false, timer: undefined };
    pending.timer = setTimeout(() => {
      pending.timer = undefined;
      if (this.#pending.get(connection) !== pending) return;
      this.#onDeadline(pending);
      connection.destroy();
    }, this.#limits.handshakeTimeoutMs);
    pending.timer.unref();
    this.#pending.set(connection, pending);
    return pending;
  }

  get(connection: TransportConnection): PendingConnection | undefined {
    return this.#pending.get(connection);
  }

  /**
   * Counts a connection whose client address arrived with its upgrade (X-Forwarded-For from a
   * trusted proxy) under that address; false when that address is at its cap.
   */
  readdress(pending: PendingConnection): boolean {
    if (pending.addressKey !== undefined || pending.connection.addressPending === true) return true;
    const key = addressKey(pending.connection.remoteIp);
    if (!this.#count(key)) return false;
    pending.addressKey = key;
    return true;
  }

  #count(key: string): boolean {
    const count = this.#perAddress.get(key) ?? 0;
    if (count >= this.#limits.maxUnauthenticatedPerAddress) return false;
    this.#perAddress.set(key, count + 1);
    return true;
  }

  /** Key confirmation succeeded, or the connection closed: stop counting it. */
  release(connection: TransportConnection): void {
    const pending = this.#pending.get(connection);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    pending.timer = undefined;
    this.#pending.delete(connection);
    if (pending.addressKey === undefined) return;
    const count = (this.#perAddress.get(pending.addressKey) ?? 1) - 1;
    if (count <= 0) this.#perAddress.delete(pending.addressKey);
    else this.#perAddress.set(pending.addressKey, count);
  }

  get size(): number {
    return this.#pending.size;
  }

  /** Clears every deadline (server shutdown). */
  clear(): void {
    for (const connection of [...this.#pending.keys()]) this.release(connection);
  }
}
