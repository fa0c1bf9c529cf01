/**
 * The listening sockets of forwards and SOCKS5 listeners, kept to one local user (issue 13 #7).
 *
 * - A unix socket (`{ path }`): created with mode 0600 in a directory the daemon's user owns and
 *   others cannot write; a stale socket left by a crashed run is replaced, anything else at the
 *   path is left alone and refused.
 * - Loopback TCP (`{ host, port }`): every connection is held unread until the owner of its
 *   connecting socket is known (src/forward/peer-owner.ts); connections of other uids, and of
 *   sockets that are gone or not on this host, are reset before a byte is read or a stream
 *   opened. `allowOtherUsers` turns the check off, `allowUids` admits further uids.
 * Refusals are logged as `local.refused`, at most one line per REFUSAL_LOG_INTERVAL_MS per
 * listener plus a summary of the ones held back.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { EVENTS } from '../log/events.js';
import { checkOwnerTablesReadable, PeerOwnerLookup, type ReadTables } from './peer-owner.js';
import { formatHostPort } from '../lib/host-port.js';

/** Listen backlog: at least the connect concurrency of a busy client. */
export const LISTEN_BACKLOG = 1024;
/** At most one refusal line per listener in this interval; the rest are counted. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;
/** sun_path holds 108 bytes with the terminating NUL. */
export const MAX_UNIX_PATH_BYTES = 107;

/** Where a local listener listens: loopback (or any) TCP, or a unix socket path. */
export type LocalListen = { readonly host: string; readonly port: number } | { readonly path: string };

/** Who besides the daemon's own uid may use a TCP listener. */
export interface LocalAccess {
  /** No owner check at all: any local user, and other hosts if the address is reachable. */
  readonly allowOtherUsers?: boolean;
  /** Further uids admitted. */
  readonly allowUids?: readonly number[];
}

/** What a listener bound: host and port, or a unix socket path. */
export type BoundAddress = { readonly host: string; readonly port: number } | { readonly path: string };

/** The logger calls the forwarders make (a pino logger fits). */
export interface ForwardLogger {
  debug(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** A listening forwarder: its bound address, and close() (stops listening, resets open connections). */
export interface ListenerHandle {
  address(): { host: string; port: number } | null;
  /** The unix socket path, or host and port. */
  bound(): BoundAddress | null;
  close(): Promise<void>;
}

export interface LocalListenerOptions {
  readonly listen: LocalListen;
  readonly access?: LocalAccess;
  /** Names the listener in refusal lines ("forward", "socks"). */
  readonly kind?: string;
  readonly logger?: ForwardLogger;
  /** Reads the socket tables (tests); /proc/self/net/tcp{,6} through one shared lookup by default. */
  readonly readTables?: ReadTables;
  /** Default REFUSAL_LOG_INTERVAL_MS. */
  readonly refusalLogIntervalMs?: number;
}

/** `unix:/path` for unix sockets, `host:port` (IPv6 bracketed) otherwise. */
export function formatLocalListen(listen: LocalListen | BoundAddress): string {
  if ('path' in listen) return `unix:${listen.path}`;
  return formatHostPort(listen.host, listen.port);
}

let sharedOwners: PeerOwnerLookup | undefined;

/** Binds the listener; resolves once listening. `onSocket` sees only admitted connections. */
export async function listenLocal(options: LocalListenerOptions, onSocket: (socket: net.Socket) => void): Promise<ListenerHandle> {
  if ('path' in options.listen) return listenUnix(options.listen.path, onSocket);
  const check = options.access?.allowOtherUsers !== true;
  if (check) {
    const problem = await checkOwnerTablesReadable(options.readTables);
    if (problem !== undefined) {
      throw new Error(
        `${formatLocalListen(options.listen)}: the owner check of local connections needs ${problem}; listen on a unix: path, or set allow_other_users = true`,
      );
    }
  }
  const owners = options.readTables !== undefined ? new PeerOwnerLookup(options.readTables) : (sharedOwners ??= new PeerOwnerLookup());
  const selfUid = process.getuid?.() ?? -1;
  const allowed = new Set<number>([selfUid, ...(options.access?.allowUids ?? [])]);
  let handle: ListenerHandle | undefined;
  const refusals = new RefusalLine(
    options.logger,
    options.kind ?? 'listener',
    () => {
      const a = handle?.bound();
      return formatLocalListen(a ?? options.listen);
    },
    options.refusalLogIntervalMs ?? REFUSAL_LOG_INTERVAL_MS,
  );
  handle = await bind(options.listen, check, (socket) => {
    if (!check) {
      onSocket(socket);
      return;
    }
    owners.ownerOf(socket).then(
      (uid) => {
        if (socket.destroyed) return;
        if (uid !== undefined && allowed.has(uid)) {
          // Held unread since accept (pauseOnConnect); the handler's 'data' listeners attach in
          // this tick, before the first chunk is emitted.
          socket.resume();
          onSocket(socket);
          return;
        }
        refusals.refused(uid);
        socket.resetAndDestroy();
      },
      () => {
        refusals.refused(undefined);
        socket.resetAndDestroy();
      },
    );
  });
  return handle;
}

function bind(
  listen: { host: string; port: number } | { path: string },
  pauseOnConnect: boolean,
  onSocket: (socket: net.Socket) => void,
): Promise<ListenerHandle & { server: net.Server }> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect, noDelay: true }, (socket) => {
    socket.on('error', () => {});
    onSocket(socket);
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const onListening = (): void => {
      server.off('error', reject);
      server.on('error', () => {});
      resolve({
        server,
        address() {
          const a = server.address();
          return a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
        },
        bound() {
          const a = server.address();
          if (a === null) return null;
          return typeof a === 'string' ? { path: a } : { host: a.address, port: a.port };
        },
        close() {
          return new Promise<void>((done) => {
            server.close(() => done());
            for (const s of sockets) s.resetAndDestroy();
          });
        },
      });
    };
    if ('path' in listen) server.listen({ path: listen.path, backlog: LISTEN_BACKLOG }, onListening);
    else server.listen({ host: listen.host, port: listen.port, backlog: LISTEN_BACKLOG }, onListening);
  });
}

/**
 * A unix socket only this uid can connect to: the directory is created (0700) when missing and
 * must be ours and not writable by others; the socket is created under umask 0177 and chmod 0600.
 */
async function listenUnix(socketPath: string, onSocket: (socket: net.Socket) => void): Promise<ListenerHandle> {
  const where = `unix:${socketPath}`;
  if (Buffer.byteLength(socketPath) > MAX_UNIX_PATH_BYTES) throw new Error(`${where}: a unix socket path is at most ${MAX_UNIX_PATH_BYTES} bytes`);
  const dir = path.dirname(socketPath);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.statSync(dir);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw new Error(`${where}: the directory ${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}): use a directory of your own`);
  if ((st.mode & 0o022) !== 0)
    throw new Error(`${where}: the directory ${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}): run chmod go-w ${dir}`);
  await removeStaleSocket(socketPath, where);
  // listen() binds synchronously: the umask is back before anything else runs.
  const oldUmask = process.umask(0o177);
  let binding: Promise<ListenerHandle & { server: net.Server }>;
  try {
    binding = bind({ path: socketPath }, false, onSocket);
  } finally {
    process.umask(oldUmask);
  }
  let handle: ListenerHandle & { server: net.Server };
  try {
    handle = await binding;
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`, { cause: err });
  }
  fs.chmodSync(socketPath, 0o600);
  const ino = fs.lstatSync(socketPath).ino;
  return {
    address: () => null,
    bound: () => ({ path: socketPath }),
    async close() {
      await handle.close();
      // Only our own socket: a later daemon may have bound the path again.
      try {
        if (fs.lstatSync(socketPath).ino === ino) fs.unlinkSync(socketPath);
      } catch {
        // already gone
      }
    },
  };
}

async function removeStaleSocket(socketPath: string, where: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`${where}: ${socketPath} exists and is not a socket; it is left alone`);
  const listening = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (listening) throw new Error(`${where}: ${socketPath} is in use by a running process`);
  fs.unlinkSync(socketPath);
}

/** One `local.refused` line per interval per listener; the others are counted into the next. */
class RefusalLine {
  #suppressed = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: ForwardLogger | undefined,
    private readonly kind: string,
    private readonly listen: () => string,
    private readonly intervalMs: number,
  ) {}

  refused(uid: number | undefined): void {
    if (this.#timer !== undefined) {
      this.#suppressed++;
      return;
    }
    this.#write(uid, 0);
    this.#timer = setTimeout(() => this.#flush(), this.intervalMs).unref();
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.#suppressed === 0) return;
    const n = this.#suppressed;
    this.#suppressed = 0;
    this.#write(undefined, n);
    this.#timer = setTimeout(() => this.#flush(), this.intervalMs).unref();
  }

  #write(uid: number | undefined, suppressed: number): void {
    const who =
      suppressed > 0
        ? `${suppressed} more connections`
        : uid === undefined
          ? 'a connection whose owner is unknown (gone, or not from this host)'
          : `a connection of uid ${uid}`;
    this.logger?.warn(
      {
        event: EVENTS.localRefused,
        kind: this.kind,
        listen: this.listen(),
        reason: suppressed === 0 && uid === undefined ? 'owner-unknown' : 'other-user',
        ...(suppressed > 0 ? { suppressed } : { uid: uid ?? null }),
      },
      `${this.kind} ${this.listen()}: refused ${who} (only this user may use it; see allow_uids)`,
    );
  }
}
