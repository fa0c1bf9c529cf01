/**
 * Reverse listeners (`-R` style): while a device is connected and has announced a service, the
 * server listens on the port the peers file gives that device for it; every connection becomes a
 * stream into the device's session (mode `reverse`: plain TCP at the server, as with any relay).
 * The port belongs to the device's key: it is released as soon as the session ends (open
 * connections reset) and taken again at once when the device comes back.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { encodeRelayedTarget } from '../device/target.js';
import { pipeSocketStream } from '../forward/pipe.js';
import { EVENTS } from '../log/events.js';
import type { MuxSession } from '../mux/session.js';
import type { ReverseListen } from './server-peers.js';

/** Connections one reverse listener holds open at most. */
export const MAX_REVERSE_CONNECTIONS = 1_024;

interface Listening {
  readonly spec: ReverseListen;
  readonly server: net.Server;
  readonly sockets: Set<net.Socket>;
  up: boolean;
}

/** The reverse listeners of one connected device. */
export class ReverseListeners {
  readonly #device: string;
  readonly #mux: MuxSession;
  readonly #log: Logger;
  readonly #tap: ((chunk: Buffer) => void) | undefined;
  readonly #open = new Map<string, Listening>();
  #closed = false;

  constructor(device: string, mux: MuxSession, logger: Logger, tap?: (chunk: Buffer) => void) {
    this.#device = device;
    this.#mux = mux;
    this.#log = logger;
    this.#tap = tap;
  }

  /** Puts `wanted` in force for the announced `services`: new ones listen, gone ones close. */
  sync(wanted: readonly ReverseListen[], services: readonly string[]): void {
    if (this.#closed) return;
    const keep = new Map(wanted.filter((w) => services.includes(w.service)).map((w) => [keyOf(w), w]));
    for (const [key, l] of this.#open) {
      if (!keep.has(key)) this.#close(key, l, 'no longer configured');
    }
    for (const [key, spec] of keep) if (!this.#open.has(key)) this.#listen(key, spec);
  }

  status(): Array<{ service: string; listen: string; up: boolean; connections: number }> {
    return [...this.#open.values()].map((l) => ({ service: l.spec.service, listen: hostPort(l.spec), up: l.up, connections: l.sockets.size }));
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
    const entry: Listening = { spec, server, sockets, up: false };
    this.#open.set(key, entry);
    server.on('error', (err: NodeJS.ErrnoException) => {
      this.#log.warn({ event: EVENTS.reverseListen, device: this.#device, service: spec.service, listen: hostPort(spec), err: err.code ?? err.message }, `reverse listener ${hostPort(spec)} for ${this.#device}:${spec.service} failed: ${err.code ?? err.message}`);
      this.#open.delete(key);
      server.close();
    });
    server.listen({ host: spec.host, port: spec.port, backlog: 511 }, () => {
      entry.up = true;
      this.#log.info({ event: EVENTS.reverseListen, device: this.#device, service: spec.service, listen: hostPort(spec) }, `reverse listener ${hostPort(spec)} -> ${this.#device}:${spec.service}`);
    });
  }

  #close(key: string, l: Listening, why: string): void {
    this.#open.delete(key);
    l.server.close();
    for (const socket of l.sockets) socket.resetAndDestroy();
    if (l.up) this.#log.info({ event: EVENTS.reverseRelease, device: this.#device, service: l.spec.service, listen: hostPort(l.spec), detail: why }, `reverse listener ${hostPort(l.spec)} released (${why})`);
  }

  #onConnection(spec: ReverseListen, socket: net.Socket, sockets: Set<net.Socket>): void {
    socket.on('error', () => {});
    if (this.#closed || this.#mux.closed) {
      socket.resetAndDestroy();
      return;
    }
    let stream;
    try {
      stream = this.#mux.openStream(encodeRelayedTarget({ service: spec.service, mode: 'reverse', user: 'reverse', userKey: '' }));
    } catch {
      socket.resetAndDestroy();
      return;
    }
    sockets.add(socket);
    const from = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.#tap) {
      const tap = this.#tap;
      socket.on('data', (c: Buffer) => tap(c));
      stream.on('data', (c: Buffer) => tap(c));
    }
    stream.once('error', (err: Error & { reason?: string }) => {
      this.#log.warn({ event: EVENTS.streamRefused, device: this.#device, service: spec.service, remote: from, reason: err.reason ?? 'error' }, `reverse connection from ${from} to ${this.#device}:${spec.service} failed: ${err.message}`);
    });
    pipeSocketStream(socket, stream, {
      onDone: (r) => {
        sockets.delete(socket);
        this.#log.info(
          { event: EVENTS.deviceStreamClose, device: this.#device, service: spec.service, user: 'reverse', remote: from, bytesToDevice: r.bytesFromSocket, bytesFromDevice: r.bytesToSocket, durationMs: r.durationMs, how: r.how },
          `reverse connection from ${from} to ${this.#device}:${spec.service} closed (${r.how})`,
        );
      },
    });
  }
}

function keyOf(spec: ReverseListen): string {
  return `${spec.service}=${hostPort(spec)}`;
}

function hostPort(spec: ReverseListen): string {
  return spec.host.includes(':') ? `[${spec.host}]:${spec.port}` : `${spec.host}:${spec.port}`;
}
