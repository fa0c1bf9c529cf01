/** Shared helpers for the session tests: captured pino logs, servers and raw peers. */
import { pino, type Logger } from 'pino';
import { WebSocket } from 'ws';
import { generateKeyPair } from '../../src/crypto/keys.js';
import { connectSecure, type ConnectSecureOptions } from '../../src/session/connect-secure.js';
import { listenSecure, type ListenSecureOptions, type PeerEntry, type SecureServer } from '../../src/session/listen-secure.js';
import type { SecureSession } from '../../src/session/secure-session.js';
import { createInitiation, consumeResponse, type CompletedHandshake } from '../../src/session/handshake.js';
import { decodeBase64Url, encodeBase64Url } from '../../src/session/base64url.js';
import { HANDSHAKE_HEADER, WIRE, ZERO_PSK, type WireProtocol } from '../../src/session/wire.js';
import { PHASE_HEADERS, type RecordType, TYPE_BYTES } from '../../src/session/record.js';
import type { SessionLimits } from '../../src/session/session-limits.js';

export type LogLine = Record<string, unknown>;

export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

export function refusals(lines: readonly LogLine[]): LogLine[] {
  return lines.filter((l) => l['event'] === 'auth.refused');
}

export interface TestPeer {
  readonly name: string;
  readonly keys: ReturnType<typeof generateKeyPair>;
  psk?: Uint8Array;
}

export function makePeer(name: string, psk?: Uint8Array): TestPeer {
  return { name, keys: generateKeyPair(), ...(psk !== undefined ? { psk } : {}) };
}

export interface TestServer {
  readonly server: SecureServer;
  readonly keys: ReturnType<typeof generateKeyPair>;
  readonly allow: Map<string, PeerEntry>;
  readonly lines: LogLine[];
  readonly sessions: SecureSession[];
  readonly url: string;
  allowPeer(peer: TestPeer): void;
  removePeer(peer: TestPeer): void;
}

const keyId = (k: Uint8Array): string => Buffer.from(k).toString('hex');

export async function startServer(
  peers: readonly TestPeer[],
  extra: Partial<ListenSecureOptions> & { limits?: Partial<SessionLimits> } = {},
  listen: (opts: ListenSecureOptions) => Promise<SecureServer> = listenSecure,
): Promise<TestServer> {
  const keys = generateKeyPair();
  const allow = new Map<string, PeerEntry>();
  const { logger, lines } = captureLogger();
  const sessions: SecureSession[] = [];
  const allowPeer = (p: TestPeer): void => {
    allow.set(keyId(p.keys.publicKey), { name: p.name, publicKey: p.keys.publicKey, ...(p.psk !== undefined ? { psk: p.psk } : {}) });
  };
  peers.forEach(allowPeer);
  const server = await listen({
    host: '127.0.0.1',
    port: 0,
    staticKeyPair: keys,
    lookupPeer: (k) => allow.get(keyId(k)),
    logger,
    onSession: (s) => {
      sessions.push(s);
      // Echo server: every message comes straight back.
      s.onMessage((m) => s.send(m));
    },
    ...extra,
  });
  const { port } = server.address();
  return {
    server,
    keys,
    allow,
    lines,
    sessions,
    url: `${extra.tls ? 'wss' : 'ws'}://127.0.0.1:${port}${extra.path ?? '/twoway'}`,
    allowPeer,
    removePeer: (p) => void allow.delete(keyId(p.keys.publicKey)),
  };
}

export async function connectPeer(
  srv: TestServer,
  peer: TestPeer,
  extra: Partial<ConnectSecureOptions> = {},
): Promise<{ session: SecureSession; lines: LogLine[] }> {
  const { logger, lines } = captureLogger();
  const session = await connectSecure({
    url: srv.url,
    staticKeyPair: peer.keys,
    serverPublicKeys: [srv.keys.publicKey],
    ...(peer.psk !== undefined ? { psk: peer.psk } : {}),
    logger,
    connectTimeoutMs: 5_000,
    ...extra,
  });
  return { session, lines };
}

/** Sends `message` and resolves with the next message received (the test server echoes). */
export function roundTrip(session: SecureSession, message: Uint8Array, timeoutMs = 5_000): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no echo')), timeoutMs);
    session.onMessage((m) => {
      clearTimeout(t);
      resolve(m);
    });
    session.send(message);
  });
}

/** Asserts an established session still carries data both ways. */
export async function expectAlive(session: SecureSession): Promise<void> {
  const probe = new TextEncoder().encode(`probe ${Math.random()}`);
  const echo = await roundTrip(session, probe);
  if (Buffer.compare(Buffer.from(echo), Buffer.from(probe)) !== 0) throw new Error('echo mismatch');
}

/**
 * A raw, scriptable client: performs the real handshake over a plain `ws` WebSocket, then lets the
 * test seal (or mangle) records by hand.
 */
export class RawClient {
  readonly ws: WebSocket;
  readonly received: Uint8Array[] = [];
  handshake!: CompletedHandshake;
  closed = false;
  #opened: Promise<void>;

  constructor(url: string, peer: TestPeer, serverKey: Uint8Array, options: { wire?: WireProtocol; message1?: Uint8Array; header?: string } = {}) {
    const wire = options.wire ?? WIRE;
    const init = createInitiation(wire, peer.keys, serverKey, peer.psk ?? ZERO_PSK);
    this.message1 = options.message1 ?? init.message;
    const header = options.header ?? encodeBase64Url(this.message1);
    this.ws = new WebSocket(url, [wire.subprotocol], { headers: { [HANDSHAKE_HEADER]: header }, perMessageDeflate: false });
    this.ws.on('error', () => {});
    this.ws.on('close', () => (this.closed = true));
    this.ws.on('message', (d: Buffer) => this.received.push(new Uint8Array(d)));
    this.#opened = new Promise((resolve, reject) => {
      this.ws.on('unexpected-response', (_req, res) => {
        this.status = res.statusCode ?? 0;
        res.resume();
        reject(new Error(`HTTP ${res.statusCode}`));
      });
      this.ws.on('upgrade', (res) => {
        const h = res.headers[HANDSHAKE_HEADER.toLowerCase()];
        if (typeof h === 'string' && options.message1 === undefined) {
          this.handshake = consumeResponse(init.state, decodeBase64Url(h, 1024, 'reply'));
        }
      });
      this.ws.on('open', () => resolve());
      this.ws.on('close', () => reject(new Error('closed')));
    });
    this.#opened.catch(() => {});
  }

  message1: Uint8Array;
  status = 0;

  opened(): Promise<void> {
    return this.#opened;
  }

  /** Seals one record of `type` under the initial send key (phase 0). */
  seal(type: number, body: Uint8Array = new Uint8Array(0), phase: 0 | 1 = 0): Buffer {
    const ct = this.handshake.keys.send.encryptWithAd(PHASE_HEADERS[phase], [TYPE_BYTES[type as RecordType] ?? Uint8Array.of(type), body]);
    return Buffer.concat([Buffer.of(phase), Buffer.from(ct)]);
  }

  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data);
  }

  close(): void {
    this.ws.terminate();
  }
}
