/**
 * A server daemon and a client daemon in one process (wireguard-go's genTestPair(tb, realSocket)):
 * over a real WebSocket on loopback, or over createChannelPair() with the real Noise handshake
 * and record layer on top. In memory, `accept` and `connect` stand in for listenSecure and
 * connectSecure: the handshake messages go from one to the other as function arguments instead
 * of HTTP headers, the allowlist is asked as listenSecure asks it, and the session reaches the
 * server daemon only after key confirmation. The WebSocket path's admission layers (rate limits,
 * replay, unauthenticated caps) are not part of it: those have their own tests.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { createChannelPair, type MessageChannel } from '../../src/channel.js';
import { generateKeyPair, type KeyPair } from '../../src/crypto/keys.js';
import { SessionError } from '../../src/errors.js';
import { EVENTS } from '../../src/log/events.js';
import { compileRules } from '../../src/policy/access-rules.js';
import { DeviceRules } from '../../src/policy/device-rules.js';
import { ServerPeers, type ServerPeer } from '../../src/policy/peer-table.js';
import { ClientDaemon, type ClientDaemonOptions } from '../../src/client/client-daemon.js';
import { ServerDaemon, type ServerDaemonOptions } from '../../src/server/server-daemon.js';
import type { ConnectSecureOptions } from '../../src/session/connect-secure.js';
import { consumeInitiation, consumeResponse, createInitiation, createResponse } from '../../src/session/handshake.js';
import type { ListenSecureOptions, SecureServer } from '../../src/session/listen-secure.js';
import { RecordType } from '../../src/session/record.js';
import { RecordLayer, type SecureSession } from '../../src/session/secure-session.js';
import { resolveSessionLimits } from '../../src/session/session-limits.js';
import { WIRE, ZERO_PSK } from '../../src/session/wire.js';
import { startEchoServer } from './tunnel.js';
import { waitUntil } from './wait.js';

export type LogLine = Record<string, unknown>;

/** The in-memory "network" between the two daemons. */
export class MemoryNetwork {
  #listener: ListenSecureOptions | undefined;
  readonly #sessions = new Set<SecureSession>();
  /** Each session's two channel ends, to cut as a lost connection would. */
  readonly #wires = new Map<SecureSession, MessageChannel>();
  /** While true, connects fail as a refused TCP connect does. */
  down = false;
  /** Connect attempts so far (successful or not). */
  attempts = 0;

  /** Stands in for listenSecure. */
  readonly accept = async (options: ListenSecureOptions): Promise<SecureServer> => {
    this.#listener = options;
    return {
      address: () => ({ host: 'memory', port: 0 }),
      sessions: this.#sessions,
      close: async () => {
        this.#listener = undefined;
        for (const s of [...this.#sessions]) s.close({ code: 'shutdown' });
      },
    };
  };

  /** Stands in for connectSecure: the real IKpsk2 handshake, then records over an in-memory pair. */
  readonly connect = async (options: ConnectSecureOptions): Promise<SecureSession> => {
    await new Promise((r) => setImmediate(r));
    this.attempts++;
    const listener = this.#listener;
    if (listener === undefined || this.down) throw new SessionError('ERR_TRANSPORT', `connect to ${options.url}: connection refused`);
    const serverKey = options.serverPublicKeys[0]!;
    const psk = options.psk ?? ZERO_PSK;
    const init = createInitiation(WIRE, options.staticKeyPair, serverKey, psk);
    let consumed;
    try {
      consumed = consumeInitiation(WIRE, listener.staticKeyPair, init.message);
    } catch {
      throw new SessionError('ERR_SESSION_AUTH', `server ${options.url} refused the handshake`);
    }
    const clientKey = consumed.clientPublicKey;
    const peer = listener.lookupPeer(clientKey);
    if (peer === undefined || (listener.requirePsk === true && peer.psk === undefined)) {
      listener.onHandshake?.({ accepted: false, reason: peer === undefined ? 'unknown-key' : 'psk-required' });
      throw new SessionError('ERR_SESSION_AUTH', `server ${options.url} refused this client (unknown or revoked key, or a psk is required)`);
    }
    const response = createResponse(consumed, peer.psk ?? ZERO_PSK);
    let done;
    try {
      done = consumeResponse(init.state, response.message);
    } catch {
      throw new SessionError('ERR_SESSION_DECRYPT', "the server's handshake reply failed to authenticate");
    }
    const [clientEnd, serverEnd] = createChannelPair();
    const peerLog = listener.logger.child({ peer: peer.name });
    const server = new RecordLayer({
      initiator: false,
      transport: serverEnd,
      keys: response.keys,
      handshakeHash: response.handshakeHash,
      wire: WIRE,
      localStatic: listener.staticKeyPair,
      remoteStatic: clientKey,
      peerName: peer.name,
      remoteAddress: 'memory',
      limits: resolveSessionLimits(listener.limits),
      logger: peerLog,
      rekeyPsk: () => {
        const now = listener.lookupPeer(clientKey);
        return now === undefined ? undefined : (now.psk ?? ZERO_PSK);
      },
      onConfirmed: (confirmed) => {
        this.#sessions.add(confirmed);
        this.#wires.set(confirmed, serverEnd);
        listener.onHandshake?.({ accepted: true });
        peerLog.info({ event: EVENTS.authAccepted }, 'handshake accepted and key confirmed');
        listener.onSession(confirmed, { muxSettings: true });
      },
      onClosed: (closed) => {
        this.#sessions.delete(closed);
        this.#wires.delete(closed);
      },
    });
    void server;
    const client = new RecordLayer({
      initiator: true,
      transport: clientEnd,
      keys: done.keys,
      handshakeHash: done.handshakeHash,
      wire: WIRE,
      localStatic: options.staticKeyPair,
      remoteStatic: serverKey,
      peerName: 'server',
      remoteAddress: 'memory',
      limits: resolveSessionLimits(options.limits),
      logger: options.logger.child({ peer: 'server' }),
      rekeyPsk: () => psk,
    });
    client.sendControl(RecordType.keepalive);
    return client;
  };

  /** Live key-confirmed sessions on the server side. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Cuts every connection under the sessions (no close record: a lost connection). */
  drop(): void {
    for (const wire of [...this.#wires.values()]) wire.close({ code: 'transport-closed' });
  }
}

export interface PeerSpec {
  readonly name: string;
  readonly allow?: readonly string[];
  readonly kind?: 'user' | 'device';
  readonly devices?: readonly string[];
  readonly key?: KeyPair;
}

export function serverPeer(spec: PeerSpec & { key: KeyPair }): ServerPeer {
  return {
    name: spec.name,
    publicKey: spec.key.publicKey,
    kind: spec.kind ?? 'user',
    rules: compileRules(spec.allow ?? []),
    devices: new DeviceRules(spec.devices ?? []),
    reverse: [],
  };
}

function capture(level = 'debug'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { lines, logger: pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) }) };
}

export interface DaemonPairOptions {
  /** A real WebSocket on loopback (true) or the in-memory pair (false). */
  readonly realSocket: boolean;
  /** The allowlist; the first peer is the client daemon's key. Default: alice, allowed nothing. */
  readonly peers?: readonly PeerSpec[];
  readonly server?: Partial<ServerDaemonOptions>;
  readonly client?: Partial<ClientDaemonOptions>;
  /** The server daemon's log level (default debug). */
  readonly serverLogLevel?: string;
  /** Start the client daemon and wait for its session (default true). */
  readonly startClient?: boolean;
}

export interface DaemonPair {
  readonly server: ServerDaemon;
  readonly client: ClientDaemon;
  readonly serverKey: KeyPair;
  readonly peers: Array<PeerSpec & { key: KeyPair }>;
  readonly serverLines: LogLine[];
  readonly clientLines: LogLine[];
  /** The in-memory network (undefined over a real socket). */
  readonly network: MemoryNetwork | undefined;
  /** The allowlist built from `peers` (for reload). */
  allowlist(peers: ReadonlyArray<PeerSpec & { key: KeyPair }>): ServerPeers;
  /** Log lines of `event` on one side. */
  events(side: 'server' | 'client', event: string): LogLine[];
  /** Starts one more client daemon with the key of `peers[index]` and waits for its session. */
  addClient(index: number, options?: Partial<ClientDaemonOptions>): Promise<{ client: ClientDaemon; lines: LogLine[] }>;
  /** Waits for the client's next session (after `sessionsBefore` opened). */
  reconnected(sessionsBefore: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a server daemon and (by default) a client daemon connected to it. */
export async function startDaemonPair(options: DaemonPairOptions): Promise<DaemonPair> {
  const serverKey = generateKeyPair();
  const peers = (options.peers ?? [{ name: 'alice' }]).map((p) => ({ ...p, key: p.key ?? generateKeyPair() }));
  const allowlist = (list: ReadonlyArray<PeerSpec & { key: KeyPair }>): ServerPeers => new ServerPeers(list.map(serverPeer));
  const network = options.realSocket ? undefined : new MemoryNetwork();
  const serverLog = capture(options.serverLogLevel);
  const clientLog = capture();
  const server = new ServerDaemon({
    listen: { host: '127.0.0.1', port: 0 },
    path: '/twoway',
    staticKeyPair: serverKey,
    peers: allowlist(peers),
    requirePsk: false,
    sessionLimits: {},
    muxLimits: {},
    dialsInFlight: 16,
    dialTimeoutMs: 5_000,
    shutdownGraceMs: 5_000,
    logger: serverLog.logger,
    ...(network ? { accept: network.accept } : {}),
    ...options.server,
  });
  const address = await server.start();
  const newClient = (key: KeyPair, logger: Logger, more: Partial<ClientDaemonOptions> = {}): ClientDaemon =>
    new ClientDaemon({
      serverUrls: [network ? 'ws://memory/twoway' : `ws://127.0.0.1:${address.port}/twoway`],
      serverPublicKeys: [serverKey.publicKey],
      staticKeyPair: key,
      forwards: [],
      socks: [],
      reconnectMinMs: 100,
      reconnectMaxMs: 1_000,
      connectWaitMs: 5_000,
      sessionLimits: {},
      muxLimits: {},
      logger,
      ...(network ? { connect: network.connect } : {}),
      ...options.client,
      ...more,
    });
  const client = newClient(peers[0]!.key, clientLog.logger);
  const extra: ClientDaemon[] = [];
  const events = (side: 'server' | 'client', event: string): LogLine[] =>
    (side === 'server' ? serverLog.lines : clientLog.lines).filter((l) => l.event === event);
  if (options.startClient !== false) {
    await client.start();
    await client.firstSession;
    // The server has the session once it saw the key confirmation.
    await waitUntil(() => server.status().sessions.length > 0, 'the server to see the session', 5_000);
  }
  return {
    server,
    client,
    serverKey,
    peers,
    serverLines: serverLog.lines,
    clientLines: clientLog.lines,
    network,
    allowlist,
    events,
    async addClient(index, more) {
      const log = capture();
      const c = newClient(peers[index]!.key, log.logger, more);
      extra.push(c);
      const before = server.status().sessions.length;
      await c.start();
      await c.firstSession;
      await waitUntil(() => server.status().sessions.length > before, 'the server to see the session', 5_000);
      return { client: c, lines: log.lines };
    },
    reconnected: (before, timeoutMs = 5_000) =>
      waitUntil(() => client.connected && client.status().sessionsOpened > before, 'the client to reconnect', timeoutMs),
    async stop() {
      await Promise.all(extra.map((c) => c.stop()));
      await client.stop();
      await server.shutdown();
    },
  };
}

/** Runs `body` once over each transport (the in-memory pair and a real WebSocket). */
export const TRANSPORTS = [
  { name: 'in memory', realSocket: false },
  { name: 'over a real WebSocket', realSocket: true },
] as const;

/**
 * The fixture of a daemon-pair test file: an echo target for the whole file, and the pair a test
 * started (`fixture.pair = await startDaemonPair(...)`) stopped after it.
 */
export function daemonPairFixture(): { readonly echoPort: number; pair: DaemonPair | undefined } {
  let echo: { server: net.Server; port: number } | undefined;
  const fixture = {
    get echoPort(): number {
      if (echo === undefined) throw new Error('the echo target starts in beforeAll');
      return echo.port;
    },
    pair: undefined as DaemonPair | undefined,
  };
  beforeAll(async () => {
    echo = await startEchoServer();
  });
  afterAll(() => echo?.server.close());
  afterEach(async () => {
    await fixture.pair?.stop();
    fixture.pair = undefined;
  });
  return fixture;
}

/** Writes `text` to a stream whose target echoes, and resolves with as many bytes read back. */
export function echoed(stream: Duplex, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (c: Buffer): void => {
      got += c.toString();
      if (got.length >= text.length) {
        stream.off('data', onData);
        stream.off('error', reject);
        resolve(got);
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
    stream.write(text);
  });
}
