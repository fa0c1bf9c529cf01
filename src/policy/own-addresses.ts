/**
 * The server host's own addresses, which a peer's broad rule must not reach (README "peers.toml",
 * SECURITY.md "access control"): every address of every interface of the host, and the address
 * the daemon listens on. With `listen = "0.0.0.0:8443"` the listen address says nothing, so the
 * interfaces are what counts. Loopback, link-local and the other special ranges are refused by
 * AccessRules on their own (unless a rule lists them explicitly), so they are left out here.
 *
 * Interfaces come and go (DHCP, VPNs, containers), so the list is read again when it is older
 * than `maxAgeMs` at the time of a check, and on every reload. No timer runs.
 */
import os from 'node:os';
import { monotonicMs, type Clock } from '../lib/clock.js';
import { canonicalAddress, isSpecialAddress } from './access-rules.js';

/** A list older than this is read again at the next check. */
export const OWN_ADDRESSES_MAX_AGE_MS = 1_000;

export type InterfaceReader = () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;

export interface OwnAddressOptions {
  /** Replaces os.networkInterfaces (tests). */
  readonly interfaces?: InterfaceReader;
  readonly maxAgeMs?: number;
  /** Monotonic milliseconds (tests). */
  readonly now?: Clock;
}

export class OwnAddresses {
  readonly #interfaces: InterfaceReader;
  readonly #maxAgeMs: number;
  readonly #now: Clock;
  #listen: readonly string[] = [];
  #list: readonly string[] = [];
  #readAt = -Infinity;

  constructor(options: OwnAddressOptions = {}) {
    this.#interfaces = options.interfaces ?? os.networkInterfaces;
    this.#maxAgeMs = options.maxAgeMs ?? OWN_ADDRESSES_MAX_AGE_MS;
    this.#now = options.now ?? monotonicMs;
  }

  /** The addresses the daemon listens on (as bound). */
  setListen(hosts: readonly string[]): void {
    this.#listen = [...hosts];
    this.refresh();
  }

  /** Reads the interfaces now (a reload). */
  refresh(): void {
    const found = new Set<string>();
    const add = (address: string): void => {
      const a = canonicalAddress(address.split('%')[0]!);
      if (a !== undefined && !isSpecialAddress(a.address)) found.add(a.address);
    };
    for (const h of this.#listen) add(h);
    let interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = {};
    try {
      interfaces = this.#interfaces();
    } catch {
      // Keep what we had: a failed read must not open the host to its peers.
      for (const a of this.#list) found.add(a);
    }
    for (const infos of Object.values(interfaces)) for (const info of infos ?? []) add(info.address);
    this.#list = Object.freeze([...found]);
    this.#readAt = this.#now();
  }

  /** The current list (read again first when stale). */
  list(): readonly string[] {
    if (this.#now() - this.#readAt >= this.#maxAgeMs) this.refresh();
    return this.#list;
  }
}
