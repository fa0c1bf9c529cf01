/**
 * An in-process server for the device-routing tests: a DeviceRouter, an allowlist, and peers
 * (users and device agents) each connected by a MuxSession pair over the in-memory channel, each
 * open dispatched by the server's own dispatchStreamRequest (src/server/dispatch.ts); plain
 * targets, the server's own dial, are not part of these tests and are refused.
 */
import { randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { createChannelPair, type CloseReason } from '../../src/channel.js';
import { ANNOUNCE_TARGET, encodeAnnouncement } from '../../src/device/target.js';
import { DeviceRouter } from '../../src/device/router.js';
import { NO_AUDIT } from '../../src/log/audit.js';
import { dispatchStreamRequest, type Dispatch, type DispatchHandle } from '../../src/server/dispatch.js';
import { ServerPeers, type ReverseListen, type ServerPeer } from '../../src/policy/peer-table.js';
import { MuxSession } from '../../src/mux/session.js';
import type { StreamRequest } from '../../src/mux/stream-request.js';
import type { MuxStream } from '../../src/mux/stream.js';
import { compileRules } from '../../src/policy/access-rules.js';
import { DeviceRules } from '../../src/policy/device-rules.js';
import { waitUntil } from './wait.js';

export type LogLine = Record<string, unknown>;

export interface PeerSpec {
  readonly name: string;
  readonly kind?: 'user' | 'device';
  readonly devices?: readonly string[];
  readonly reverse?: readonly ReverseListen[];
  /** Keeps a key across reloads; random by default. */
  readonly key?: Uint8Array;
}

/** One connected peer: its own MuxSession (the agent or user side) and the server's handle. */
export interface Connected {
  readonly name: string;
  readonly agent: MuxSession;
  readonly handle: DispatchHandle;
  /** Relayed opens the agent received (when no handler was given). */
  readonly requests: StreamRequest[];
  readonly closes: CloseReason[];
}

export function peer(spec: PeerSpec): ServerPeer {
  return {
    name: spec.name,
    publicKey: spec.key ?? new Uint8Array(randomBytes(32)),
    kind: spec.kind ?? 'user',
    rules: compileRules([]),
    devices: new DeviceRules(spec.devices ?? []),
    reverse: spec.reverse ?? [],
  };
}

export class DeviceServer {
  readonly lines: LogLine[] = [];
  readonly logger: Logger;
  readonly router: DeviceRouter;
  peers: ServerPeers;
  readonly #byName = new Map<string, ServerPeer>();
  readonly #dispatch: Dispatch<DispatchHandle>;

  constructor(specs: readonly PeerSpec[]) {
    this.logger = pino({ level: 'debug' }, { write: (s: string) => void this.lines.push(JSON.parse(s) as LogLine) });
    this.router = new DeviceRouter(this.logger);
    this.peers = this.#build(specs);
    this.#dispatch = {
      peers: () => this.peers,
      devices: this.router,
      draining: () => false,
      streamsOfKey: () => 0,
      serveTarget: (_handle, request) => request.reject('not-permitted', 'plain targets are not part of these tests'),
      audit: NO_AUDIT,
    };
  }

  #build(specs: readonly PeerSpec[]): ServerPeers {
    const list = specs.map((s) => peer({ ...s, ...(this.#byName.has(s.name) && !s.key ? { key: this.#byName.get(s.name)!.publicKey } : {}) }));
    for (const p of list) this.#byName.set(p.name, p);
    return new ServerPeers(list);
  }

  /** Replaces the allowlist (names keep their keys unless a key is given); returns the router's reset count. */
  reload(specs: readonly PeerSpec[]): number {
    this.peers = this.#build(specs);
    return this.router.reload(this.peers).streamsReset;
  }

  key(name: string): Uint8Array {
    return this.#byName.get(name)!.publicKey;
  }

  keyBase64(name: string): string {
    return Buffer.from(this.key(name)).toString('base64');
  }

  /** Connects `name` (a device agent when its kind is device) and registers it as ServerDaemon does. */
  connect(name: string, onRequest?: (request: StreamRequest) => void): Connected {
    const [agentEnd, serverEnd] = createChannelPair();
    const requests: StreamRequest[] = [];
    const closes: CloseReason[] = [];
    const agent = new MuxSession(agentEnd, { role: 'client', onStreamRequest: onRequest ?? ((r) => requests.push(r)) });
    const handle: DispatchHandle = {
      peerKey: this.key(name),
      fingerprint: Buffer.from(this.key(name)).toString('base64'),
      log: this.logger.child({ peer: name }),
      session: {
        close: (reason: CloseReason = { code: 'normal' }) => {
          closes.push(reason);
          serverEnd.close(reason);
        },
      },
      mux: new MuxSession(serverEnd, { role: 'server', onStreamRequest: (request) => dispatchStreamRequest(this.#dispatch, handle, request) }),
    };
    const p = this.peers.lookup(this.key(name));
    if (p?.kind === 'device') this.router.online(handle, p);
    return { name, agent, handle, requests, closes };
  }

  /** The device announces `services`; resolves once the router has them. */
  async announce(device: Connected, services: readonly string[]): Promise<void> {
    const stream = device.agent.openStream(ANNOUNCE_TARGET);
    stream.on('error', () => {});
    stream.end(encodeAnnouncement(services));
    await waitUntil(
      () => JSON.stringify(this.router.status().find((d) => d.name === device.name)?.services ?? null) === JSON.stringify([...services]),
      `the announcement of ${device.name}`,
      5_000,
    );
  }

  /** The first log line with `event` (and matching fields), if any. */
  find(event: string, fields: Record<string, unknown> = {}): LogLine | undefined {
    return this.lines.find((l) => l.event === event && Object.entries(fields).every(([k, v]) => l[k] === v));
  }
}

/** Resolves with the error a stream fails with (or rejects when it opens instead). */
export function refusal(stream: MuxStream): Promise<Error & { reason?: string; code?: string }> {
  return new Promise((resolve, reject) => {
    stream.once('error', resolve);
    stream.once('open', () => reject(new Error('the stream opened')));
  });
}

export function opened(stream: MuxStream): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once('open', resolve);
    stream.once('error', reject);
  });
}
