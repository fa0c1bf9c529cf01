/**
 * The client's local listeners (forwards and SOCKS5): the set in force, and how a reload moves
 * from one set to the next without touching the listeners (and connections) that stay.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { startLocalForward } from '../forward/local-forward.js';
import { formatLocalListen, type BoundAddress, type LocalAccess, type LocalListen } from '../forward/local-listener.js';
import { startSocksServer } from '../forward/socks5.js';
import { EVENTS } from '../log/events.js';

/** A local forward: connections to `listen` are carried to `target` through the tunnel. */
export interface ClientForward {
  readonly listen: LocalListen;
  /** Who besides this user may connect (default: nobody). */
  readonly access?: LocalAccess;
  readonly target: string;
}

/** A SOCKS5 listener. */
export interface ClientSocks {
  readonly listen: LocalListen;
  readonly access?: LocalAccess;
}

/** What `setListeners` did: listeners started, closed, and left running. */
export interface ListenerChanges {
  added: number;
  removed: number;
  kept: number;
}

/** A listener's row in the client's status. */
export interface ListenerStatus {
  kind: string;
  listen: string;
  target: string | null;
  up: boolean;
}

interface Listener {
  readonly kind: 'forward' | 'socks';
  readonly listen: string;
  readonly target?: string;
  readonly access?: LocalAccess | undefined;
  address(): BoundAddress | null;
  close(): Promise<void>;
}

/** Log fields of a bound listener: host and port, or path. */
const boundFields = (a: BoundAddress | null): object => (a === null ? {} : 'path' in a ? { path: a.path } : { host: a.host, port: a.port });

/** Identifies a listener across reloads: same kind, address, target and access. */
const listenerKey = (kind: string, listen: string, target?: string, access?: LocalAccess): string =>
  `${kind} ${listen} ${target ?? ''} ${JSON.stringify(access ?? {})}`;

/** The set of local listeners in force; every connection they accept is opened with `open`. */
export class LocalListeners {
  readonly #open: (target: string) => Duplex;
  readonly #log: Logger;
  #listeners: Listener[] = [];

  constructor(open: (target: string) => Duplex, logger: Logger) {
    this.#open = open;
    this.#log = logger;
  }

  /**
   * Puts a set of forwards and SOCKS listeners in force (start and reload): listeners that stay
   * keep running with their connections; removed ones close; new ones start. A listener that
   * cannot bind fails the call after the others are in place.
   */
  async set(forwards: readonly ClientForward[], socks: readonly ClientSocks[]): Promise<ListenerChanges> {
    const open = this.#open;
    const wanted = new Map<string, () => Promise<Listener>>();
    /** What a failure names: "forward 127.0.0.1:2222 db.corp.example:22", "socks 127.0.0.1:1080". */
    const labels = new Map<string, string>();
    for (const f of forwards) {
      const listen = formatLocalListen(f.listen);
      labels.set(listenerKey('forward', listen, f.target, f.access), `forward ${listen} ${f.target}`);
      wanted.set(listenerKey('forward', listen, f.target, f.access), async () => {
        const server = await startLocalForward({ listen: f.listen, ...(f.access ? { access: f.access } : {}), target: f.target, open, logger: this.#log });
        const a = server.bound();
        this.#log.info(
          { event: EVENTS.listen, kind: 'forward', ...boundFields(a), target: f.target },
          `forwarding ${a ? formatLocalListen(a) : listen} to ${f.target}`,
        );
        return { kind: 'forward', listen, target: f.target, access: f.access, address: () => server.bound(), close: () => server.close() };
      });
    }
    for (const s of socks) {
      const listen = formatLocalListen(s.listen);
      labels.set(listenerKey('socks', listen, undefined, s.access), `socks ${listen}`);
      wanted.set(listenerKey('socks', listen, undefined, s.access), async () => {
        const server = await startSocksServer({ listen: s.listen, ...(s.access ? { access: s.access } : {}), open, logger: this.#log });
        const a = server.bound();
        this.#log.info({ event: EVENTS.listen, kind: 'socks', ...boundFields(a) }, `SOCKS5 on ${a ? formatLocalListen(a) : listen}`);
        return { kind: 'socks', listen, access: s.access, address: () => server.bound(), close: () => server.close() };
      });
    }
    const kept: Listener[] = [];
    const removed: Listener[] = [];
    for (const l of this.#listeners) {
      const k = listenerKey(l.kind, l.listen, l.target, l.access);
      // Port 0 listeners are never "the same" across a reload: each asks for a fresh port.
      if (wanted.has(k) && !l.listen.endsWith(':0')) {
        kept.push(l);
        wanted.delete(k);
      } else {
        removed.push(l);
      }
    }
    await Promise.all(removed.map((l) => l.close()));
    this.#listeners = [...kept];
    let failure: Error | undefined;
    for (const [k, start] of wanted) {
      try {
        this.#listeners.push(await start());
      } catch (err) {
        // "socks 127.0.0.1:1080: address already in use", the cause kept for its code.
        const e = err as NodeJS.ErrnoException;
        const why = e.code === 'EADDRINUSE' ? 'address already in use' : e.code === 'EACCES' ? 'permission denied' : e.message;
        failure ??= new Error(`${labels.get(k) ?? k}: ${why}`, { cause: err });
      }
    }
    if (failure) throw failure;
    return { added: wanted.size, removed: removed.length, kept: kept.length };
  }

  /** Addresses the listeners actually bound (port 0 resolved), in config order; unix sockets are left out. */
  addresses(): Array<{ kind: string; host: string; port: number; target?: string }> {
    return this.#listeners.flatMap((l) => {
      const a = l.address();
      return a && !('path' in a) ? [{ kind: l.kind, host: a.host, port: a.port, ...(l.target ? { target: l.target } : {}) }] : [];
    });
  }

  /** Each listener's status row: the bound address (or the configured one while it is not bound). */
  status(): ListenerStatus[] {
    return this.#listeners.map((l) => {
      const a = l.address();
      return { kind: l.kind, listen: a ? ('path' in a ? formatLocalListen(a) : `${a.host}:${a.port}`) : l.listen, target: l.target ?? null, up: a !== null };
    });
  }

  /** Closes every listener; they stay listed, as down (what the status of a stopping client shows). */
  async close(): Promise<void> {
    await Promise.all(this.#listeners.map((l) => l.close()));
  }

  /** Closes every listener and forgets it (a start that could not bind them all). */
  async clear(): Promise<void> {
    await Promise.all(this.#listeners.splice(0).map((l) => l.close()));
  }
}
