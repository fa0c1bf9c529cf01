/**
 * Reverse listeners (`-R` style): while a device is connected and has announced a service, the
 * server listens on the port the peers file gives that device for it; every connection becomes a
 * stream into the device's session (mode `reverse`: plain TCP at the server, as with any relay).
 * The port belongs to the device's key: it is released as soon as the session ends (open
 * connections reset) and taken again at once when the device comes back.
 *
 * Anyone who can reach the port can connect, so connections are admitted per source address and
 * per device (concurrent and per second) before they cost the device anything, then wait their
 * turn in the device's open queue (open-queue.ts) like users' opens; the logger rate-limits
 * the lines of reverse connections per device (src/log/rate-limit.ts; issue 13 items 1 and 11).
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { encodeRelayedTarget } from './target.js';
import { socketIntoStream } from '../forward/socket-into-stream.js';
import { EVENTS } from '../log/events.js';
import type { MuxSession } from '../mux/session.js';
import { TokenBucket } from '../lib/token-bucket.js';
import type { DeviceOpenQueue, OpenSlot } from './open-queue.js';
import type { ReverseListen } from '../policy/peer-table.js';
import { formatHostPort } from '../lib/host-port.js';

/** Connections one reverse listener holds open at most. */
export const MAX_REVERSE_CONNECTIONS = 1_024;
/** Connections the reverse listeners of one device hold at once, from all sources. */
export const MAX_REVERSE_CONNECTIONS_PER_DEVICE = 128;
/** Connections from one source address held at once (per device). */
export const MAX_REVERSE_CONNECTIONS_PER_SOURCE = 16;
/** New connections per second from all sources (per device), and in a burst. */
export const REVERSE_ACCEPT_RATE_PER_S = 20;
export const REVERSE_ACCEPT_BURST = 40;
/** New connections per second from one source address (per device), and in a burst. */
export const REVERSE_ACCEPT_RATE_PER_SOURCE_PER_S = 5;
export const REVERSE_ACCEPT_BURST_PER_SOURCE = 10;
/** Source addresses tracked at once; beyond, idle ones are forgotten. */
const MAX_TRACKED_SOURCES = 4_096;

/** Admission state of one source address. */
interface Source {
  connections: number;
  readonly bucket: TokenBucket;
}

/** One reverse port: `up` once bound; `failed` after a bind error (retried on the next sync). */
interface Listening {
  readonly spec: ReverseListen;
  readonly server: net.Server;
  readonly sockets: Set<net.Socket>;
  up: boolean;
  failed: boolean;
}

/** What status shows for one reverse port. */
export interface ReverseStatus {
  readonly service: string;
  readonly listen: string;
  readonly up: boolean;
  readonly connections: number;
}

/** The reverse listeners of one connected device. */
export class ReverseListeners {
  readonly #device: string;
  readonly #mux: MuxSession;
  readonly #log: Logger;
  readonly #tap: ((chunk: Buffer) => void) | undefined;
  readonly #open = new Map<string, Listening>();
  readonly #opens: DeviceOpenQueue;
  readonly #sources = new Map<string, Source>();
  readonly #bucket = new TokenBucket(REVERSE_ACCEPT_RATE_PER_S, REVERSE_ACCEPT_BURST);
  #connections = 0;
  #closed = false;

  constructor(device: string, mux: MuxSession, logger: Logger, tap: ((chunk: Buffer) => void) | undefined, opens: DeviceOpenQueue) {
    this.#device = device;
    this.#mux = mux;
    this.#log = logger;
    this.#tap = tap;
    this.#opens = opens;
  }

  /**
   * Puts `wanted` in force for the announced `services`: new ones listen, gone ones close (their
   * connections reset), ones whose bind failed are tried again.
   */
  sync(wanted: readonly ReverseListen[], services: readonly string[]): void {
    if (this.#closed) return;
    const keep = new Map(wanted.filter((w) => services.includes(w.service)).map((w) => [keyOf(w), w]));
    for (const [key, l] of this.#open) {
      if (!keep.has(key)) this.#close(key, l, 'no longer configured');
      else if (l.failed) this.#open.delete(key);
    }
    for (const [key, spec] of keep) if (!this.#open.has(key)) this.#listen(key, spec);
  }

  status(): ReverseStatus[] {
    return [...this.#open.values()].map((l) => ({ service: l.spec.service, listen: hostPort(l.spec), up: l.up, connections: l.sockets.size }));
  }

  /** Connections open through these listeners (counted in the shutdown drain). */
  get connectionCount(): number {
    let n = 0;
    for (const l of this.#open.values()) n += l.sockets.size;
    return n;
  }

  /** Shutdown has begun: accept no more connections, let the open ones drain. */
  stopAccepting(): void {
    this.#closed = true;
    for (const l of this.#open.values()) this.#release(l, 'server shutting down');
  }

  /** The device went away: release every port now; open connections are reset. */
  closeAll(why: string): void {
    this.#closed = true;
    for (const [key, l] of this.#open) this.#close(key, l, why);
  }

  #listen(key: string, spec: ReverseListen): void {
    const sockets = new Set<net.Socket>();
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.#onConnection(spec, socket, sockets));
    server.maxConnections = MAX_REVERSE_CONNECTIONS;
    const entry: Listening = { spec, server, sockets, up: false, failed: false };
    this.#open.set(key, entry);
    server.on('error', (err: NodeJS.ErrnoException) => {
      // Not fatal: the device keeps working through the tunnel; status shows the port down.
      this.#log.warn(
        { event: EVENTS.reverseListen, device: this.#device, service: spec.service, listen: hostPort(spec), err: err.code ?? err.message },
        `reverse listener ${hostPort(spec)} for ${this.#device}:${spec.service} failed: ${err.code ?? err.message}`,
      );
      entry.up = false;
      entry.failed = true;
      server.close();
    });
    server.listen({ host: spec.host, port: spec.port, backlog: 511 }, () => {
      if (this.#open.get(key) !== entry || this.#closed) {
        server.close(); // released (or shutdown began) while the bind was in progress
        return;
      }
      entry.up = true;
      this.#log.info(
        { event: EVENTS.reverseListen, device: this.#device, service: spec.service, listen: hostPort(spec) },
        `reverse listener ${hostPort(spec)} -> ${this.#device}:${spec.service}`,
      );
    });
  }

  #close(key: string, l: Listening, why: string): void {
    this.#open.delete(key);
    this.#release(l, why);
    for (const socket of l.sockets) socket.resetAndDestroy();
  }

  /** Stops listening on `l`'s port (open connections are left to the caller) and logs it once. */
  #release(l: Listening, why: string): void {
    if (l.server.listening) l.server.close();
    if (l.up)
      this.#log.info(
        { event: EVENTS.reverseRelease, device: this.#device, service: l.spec.service, listen: hostPort(l.spec), detail: why },
        `reverse listener ${hostPort(l.spec)} released (${why})`,
      );
    l.up = false;
  }

  #onConnection(spec: ReverseListen, socket: net.Socket, sockets: Set<net.Socket>): void {
    socket.on('error', () => {});
    if (this.#closed || this.#mux.closed) {
      socket.resetAndDestroy();
      return;
    }
    const address = socket.remoteAddress ?? '';
    const from = `${address}:${socket.remotePort}`;
    const refused = (reason: string, detail: string): void => {
      this.#log.warn(
        { event: EVENTS.deviceStreamRefused, device: this.#device, service: spec.service, user: 'reverse', remote: from, reason, detail },
        `reverse connection from ${from} to ${this.#device}:${spec.service} refused: ${detail}`,
      );
    };
    const why = this.#admit(address);
    if (why !== undefined) {
      socket.resetAndDestroy();
      refused('limit', why);
      return;
    }
    const source = this.#sources.get(address)!;
    source.connections++;
    this.#connections++;
    sockets.add(socket);
    const gone = new AbortController();
    socket.once('close', () => {
      sockets.delete(socket);
      source.connections--;
      this.#connections--;
      gone.abort();
    });
    this.#opens.submit({
      key: `reverse ${address}`,
      session: socket,
      signal: gone.signal,
      refuse: (reason, detail) => {
        socket.resetAndDestroy();
        refused(reason, detail);
      },
      start: (slot) => this.#relay(spec, socket, from, refused, slot),
    });
  }

  /** Why a connection from `address` is not admitted now, or undefined (then it is counted in). */
  #admit(address: string): string | undefined {
    if (this.#connections >= MAX_REVERSE_CONNECTIONS_PER_DEVICE) return `${MAX_REVERSE_CONNECTIONS_PER_DEVICE} reverse connections to this device already`;
    let source = this.#sources.get(address);
    if (source === undefined) {
      if (this.#sources.size >= MAX_TRACKED_SOURCES) {
        for (const [a, s] of this.#sources) if (s.connections === 0) this.#sources.delete(a);
      }
      source = { connections: 0, bucket: new TokenBucket(REVERSE_ACCEPT_RATE_PER_SOURCE_PER_S, REVERSE_ACCEPT_BURST_PER_SOURCE) };
      this.#sources.set(address, source);
    }
    if (source.connections >= MAX_REVERSE_CONNECTIONS_PER_SOURCE) return `${MAX_REVERSE_CONNECTIONS_PER_SOURCE} connections from this address already`;
    if (!source.bucket.take()) return 'too many new connections from this address';
    if (!this.#bucket.take()) return 'too many new connections to this device';
    return undefined;
  }

  /** Its turn in the device's queue: the device stream is opened and the socket piped into it. */
  #relay(spec: ReverseListen, socket: net.Socket, from: string, refused: (reason: string, detail: string) => void, slot: OpenSlot): void {
    if (socket.destroyed || this.#closed || this.#mux.closed) {
      slot.done();
      socket.resetAndDestroy();
      return;
    }
    const target = encodeRelayedTarget({ service: spec.service, mode: 'reverse', user: 'reverse', userKey: '' });
    const stream = socketIntoStream(socket, () => this.#mux.openStream(target), {
      ...(this.#tap ? { tap: this.#tap } : {}),
      onOpen: () => slot.answered(),
      onRefused: (err: Error & { reason?: string }) => {
        slot.answered();
        refused(err.reason ?? 'error', err.message);
      },
      onDone: (r, opened) => {
        slot.done();
        if (!opened) return; // never reached the service: the refusal above is its line
        this.#log.info(
          {
            event: EVENTS.deviceStreamClose,
            device: this.#device,
            service: spec.service,
            user: 'reverse',
            remote: from,
            bytesToDevice: r.bytesFromSocket,
            bytesFromDevice: r.bytesToSocket,
            durationMs: r.durationMs,
            how: r.how,
          },
          `reverse connection from ${from} to ${this.#device}:${spec.service} closed (${r.how})`,
        );
      },
    });
    if (stream === undefined) slot.done();
    else stream.once('close', () => slot.done());
  }
}

function keyOf(spec: ReverseListen): string {
  return `${spec.service}=${hostPort(spec)}`;
}

function hostPort(spec: ReverseListen): string {
  return formatHostPort(spec.host, spec.port);
}
