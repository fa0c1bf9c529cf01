/**
 * The server daemon's composition root: secure sessions from allowlisted peers, a multiplexer in
 * each, and a policy-checked dial for every stream. Files, argv and signals are the CLI's
 * business; this module receives loaded state and exposes start, reload, status and shutdown.
 */
import type { Logger } from 'pino';
import { fingerprint, type KeyPair } from '../crypto/keys.js';
import { NO_AUDIT, type AuditSink } from '../log/audit.js';
import { EVENTS } from '../log/events.js';
import { MuxSession } from '../mux/session.js';
import type { StreamRequest } from '../mux/stream-request.js';
import { listenSecure, type ListenSecureOptions, type SecureServer, type SessionInfo } from '../session/listen-secure.js';
import type { SecureSession } from '../session/secure-session.js';
import type { SessionLimits } from '../session/session-limits.js';
import type { MuxLimits } from '../mux/mux-limits.js';
import { DeviceRouter, type DeviceStatus } from '../device/router.js';
import { DialLimiter } from '../forward/dial-limiter.js';
import { OwnAddresses } from '../policy/own-addresses.js';
import { dispatchStreamRequest, type Dispatch } from './dispatch.js';
import { recheckPendingOpens, serveStreamRequest, type ActiveStream, type PendingOpen } from './target-streams.js';
import type { ServerPeer, ServerPeers } from '../policy/peer-table.js';
import { formatHostPort } from '../lib/host-port.js';
import { VerifyGate, type VerificationStatus, type VerifyGateOptions } from './verify-gate.js';
import type { JoinService } from '../enroll/join-server.js';

export interface ServerDaemonOptions {
  readonly listen: { readonly host: string; readonly port: number };
  readonly path: string;
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  readonly staticKeyPair: KeyPair;
  readonly peers: ServerPeers;
  readonly requirePsk: boolean;
  readonly sessionLimits: Partial<SessionLimits>;
  readonly muxLimits: Partial<MuxLimits>;
  readonly dialsInFlight: number;
  readonly dialTimeoutMs: number;
  /** Streams of one key at once, across its sessions (docs/STREAMS.md, "Memory per key"). */
  readonly maxStreamsPerKey?: number;
  readonly shutdownGraceMs: number;
  /** Trusted reverse proxies (`trusted_proxies`, `proxy_protocol`). */
  readonly proxies?: ListenSecureOptions['proxies'];
  readonly logger: Logger;
  /** Sees every byte relayed between users and devices (`--debug-relay-capture`). */
  readonly relayTap?: (chunk: Buffer) => void;
  /**
   * Accepts secure sessions (default listenSecure: WebSocket on `listen`). Tests pass one that
   * runs the real handshake over in-memory channels (test/helpers/daemon-pair.ts).
   */
  readonly accept?: (options: ListenSecureOptions) => Promise<SecureServer>;
  /** Audit events as typed values (the metrics count them), whatever the log level. */
  readonly audit?: AuditSink;
  /** User verification: the TOTP secrets and limits (`[verify]`), and OIDC when configured (src/server/verify-gate.ts). */
  readonly verify?: VerifyGateOptions;
  /** Enrollment by invitation: join handshakes are looked up and served here (src/enroll/). */
  readonly join?: JoinService;
}

/** One live, key-confirmed session and what runs inside it. */
export interface ServerSessionHandle {
  readonly session: SecureSession;
  readonly mux: MuxSession;
  readonly peerKey: Uint8Array;
  /** The peer key's fingerprint (canonical base64). */
  readonly fingerprint: string;
  peerName: string;
  /** The daemon's logger with this peer's name (renewed when a reload renames the peer). */
  log: Logger;
  readonly streams: Set<ActiveStream>;
  readonly dials: DialLimiter;
  readonly pending: Set<PendingOpen>;
}

const REVOKE_CLOSE_MESSAGE = 'peer key removed or revoked';

export class ServerDaemon {
  readonly #options: ServerDaemonOptions;
  readonly #log: Logger;
  #peers: ServerPeers;
  #server: SecureServer | undefined;
  /** The host's interface addresses and the listen address: refused to broad rules. */
  readonly #own = new OwnAddresses();
  readonly #handles = new Set<ServerSessionHandle>();
  /** The live sessions of each key (fingerprint), for the per-key stream cap. */
  readonly #handlesByKey = new Map<string, Set<ServerSessionHandle>>();
  #draining = false;
  readonly #devices: DeviceRouter;
  readonly #audit: AuditSink;
  /** Every open of every session: src/server/dispatch.ts decides where it goes. */
  readonly #dispatch: Dispatch<ServerSessionHandle>;
  /** User verification: the `twoway:verify` stream and the `unverified` refusal (verify-gate.ts). */
  readonly #gate: VerifyGate;

  constructor(options: ServerDaemonOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#peers = options.peers;
    this.#audit = options.audit ?? NO_AUDIT;
    this.#gate = new VerifyGate(options.verify ?? {}, this.#audit);
    this.#gate.currentPeer = (handle) => this.#peers.lookup((handle as ServerSessionHandle).peerKey);
    this.#devices = new DeviceRouter(options.logger, options.relayTap, this.#audit);
    this.#dispatch = {
      peers: () => this.#peers,
      devices: this.#devices,
      draining: () => this.#draining,
      ...(options.maxStreamsPerKey !== undefined ? { maxStreamsPerKey: options.maxStreamsPerKey } : {}),
      streamsOfKey: (keyFingerprint) => {
        // This open is already counted in its session's streams.
        let held = 0;
        for (const other of this.#handlesByKey.get(keyFingerprint) ?? []) held += other.mux.streamCount;
        return held;
      },
      serveTarget: (handle, request) =>
        serveStreamRequest({
          handle,
          currentPeer: () => this.#effectivePeer(handle),
          request,
          dialTimeoutMs: options.dialTimeoutMs,
          ownAddresses: () => this.#own.list(),
          logger: handle.log,
          audit: this.#audit,
        }),
      audit: this.#audit,
    };
  }

  get publicKey(): Uint8Array {
    return this.#options.staticKeyPair.publicKey;
  }

  /** Listens and resolves with the bound address. */
  async start(): Promise<{ host: string; port: number }> {
    const o = this.#options;
    this.#server = await (o.accept ?? listenSecure)({
      host: o.listen.host,
      port: o.listen.port,
      path: o.path,
      ...(o.tls ? { tls: o.tls } : {}),
      staticKeyPair: o.staticKeyPair,
      requirePsk: o.requirePsk,
      limits: o.sessionLimits,
      ...(o.proxies ? { proxies: o.proxies } : {}),
      logger: this.#log,
      lookupPeer: (publicKey) => (this.#draining ? undefined : this.#peers.lookup(publicKey)),
      ...(o.join !== undefined ? { lookupJoin: (id: Uint8Array) => (this.#draining ? { refused: 'invite-unknown' as const } : o.join!.lookupJoin(id)) } : {}),
      onSession: (session, info) => this.#onSession(session, info),
      onHandshake: (outcome) => this.#audit(outcome.accepted ? { type: 'handshake-accepted' } : { type: 'handshake-refused', reason: outcome.reason }),
    });
    const address = this.#server.address();
    this.#own.setListen([address.host]);
    this.#log.info(
      {
        event: EVENTS.listen,
        host: address.host,
        port: address.port,
        path: o.path,
        tls: o.tls !== undefined,
        fingerprint: fingerprint(o.staticKeyPair.publicKey),
      },
      `listening on ${o.tls ? 'wss' : 'ws'}://${formatHostPort(address.host, address.port)}${o.path}`,
    );
    return address;
  }

  #onSession(session: SecureSession, info: SessionInfo): void {
    if (info.join !== undefined) {
      // A join session carries the join exchange and closes; it never gets a mux.
      if (this.#options.join !== undefined && !this.#draining) this.#options.join.serve(session, info.join);
      else session.close({ code: 'shutdown', message: 'server shutting down' });
      return;
    }
    const publicKey = fingerprint(session.peerPublicKey);
    const peer = this.#peers.lookup(session.peerPublicKey);
    if (peer === undefined || this.#draining) {
      // Revoked between the handshake and key confirmation, or the server is stopping.
      session.close(peer === undefined ? { code: 'revoked', message: REVOKE_CLOSE_MESSAGE } : { code: 'shutdown', message: 'server shutting down' });
      return;
    }
    const log = this.#log.child({ peer: peer.name });
    const handle: ServerSessionHandle = {
      session,
      peerKey: session.peerPublicKey,
      fingerprint: publicKey,
      peerName: peer.name,
      log,
      streams: new Set(),
      dials: new DialLimiter({ maxInFlight: this.#options.dialsInFlight }),
      pending: new Set(),
      mux: new MuxSession(session, {
        role: 'server',
        limits: this.#options.muxLimits,
        // A client that reads SETTINGS learns the open rate, burst and stream cap, and paces itself.
        ...(info.muxSettings ? { advertise: { ...(this.#options.maxStreamsPerKey !== undefined ? { maxStreams: this.#options.maxStreamsPerKey } : {}) } } : {}),
        // Through the handle, so the mux's lines follow a rename by reload as the stream lines do.
        logger: { debug: (fields, message) => handle.log.debug(fields, message), warn: (fields, message) => handle.log.warn(fields, message) },
        onStreamRequest: (request: StreamRequest) => this.#onStreamRequest(handle, request),
      }),
    };
    this.#handles.add(handle);
    const ofKey = this.#handlesByKey.get(publicKey) ?? new Set();
    this.#handlesByKey.set(publicKey, ofKey.add(handle));
    log.info({ event: EVENTS.sessionOpen, fingerprint: publicKey, remote: session.remoteAddress }, `session established with ${peer.name}`);
    if (peer.kind === 'device') this.#devices.online(handle, peer);
    handle.mux.onClose((info) => {
      this.#handles.delete(handle);
      ofKey.delete(handle);
      if (ofKey.size === 0 && this.#handlesByKey.get(publicKey) === ofKey) this.#handlesByKey.delete(publicKey);
      this.#gate.sessionEnded(session.binding);
      handle.log.debug(
        { event: EVENTS.muxClosed, reason: info.code, remoteClose: info.remote, detail: info.message },
        `streams of ${handle.peerName} ended (${info.code})`,
      );
    });
  }

  #onStreamRequest(handle: ServerSessionHandle, request: StreamRequest): void {
    if (this.#gate.intercept(handle, this.#peers.lookup(handle.peerKey), request)) return;
    dispatchStreamRequest(this.#dispatch, handle, request);
  }

  /** The peer with the rules its verified person meets now (`verified<D`, `group:NAME`). */
  #effectivePeer(handle: ServerSessionHandle): ServerPeer | undefined {
    const peer = this.#peers.lookup(handle.peerKey);
    if (peer === undefined || !peer.rules.conditional) return peer;
    return { ...peer, rules: peer.rules.forPerson(this.#gate.person(handle.fingerprint), Date.now()) };
  }

  /**
   * `twoway unverify`: forgets the verification of the peer named `peer` (its key) or of the
   * person `identity` (every key they verified), and closes those keys' sessions at once.
   */
  unverify(target: { peer?: string; identity?: string }): { dropped: number; sessionsClosed: number } {
    const ofPeer = [...this.#handles].filter((h) => h.peerName === target.peer).map((h) => h.fingerprint);
    const { keys, dropped } = this.#gate.revoke(target, ofPeer);
    let sessionsClosed = 0;
    for (const key of keys) {
      for (const handle of [...(this.#handlesByKey.get(key) ?? [])]) {
        sessionsClosed++;
        handle.session.close({ code: 'revoked', message: 'user verification revoked' });
        handle.mux.close('shutdown', 'user verification revoked');
      }
    }
    this.#log.warn(
      { event: EVENTS.verifyRevoked, ...target, keys: keys.length, dropped, sessionsClosed },
      `verification revoked for ${target.peer !== undefined ? `peer ${target.peer}` : `identity ${target.identity ?? ''}`}: ${dropped} dropped, ${sessionsClosed} sessions closed`,
    );
    return { dropped, sessionsClosed };
  }

  /**
   * Puts a new allowlist in force. Sessions of keys no longer listed are closed at once; streams
   * whose target the peer may no longer reach are reset, and opens still waiting for or in their
   * dial (or a device's answer) are refused; everything else stays up.
   */
  reload(peers: ServerPeers): { removed: number; streamsReset: number; opensRefused: number; peers: number } {
    this.#peers = peers;
    this.#gate.reload((key) => peers.lookup(Buffer.from(key, 'base64')));
    this.#own.refresh();
    const own = this.#own.list();
    let removed = 0;
    let streamsReset = 0;
    let opensRefused = 0;
    for (const handle of [...this.#handles]) {
      const peer: ServerPeer | undefined = peers.lookup(handle.peerKey);
      if (peer === undefined) {
        removed++;
        this.#log.warn(
          { event: EVENTS.peersChanged, peer: handle.peerName, fingerprint: handle.fingerprint },
          `closing the session of ${handle.peerName}: key removed from the allowlist`,
        );
        // The close record first, so the client learns `revoked` (a GOAWAY has no such code).
        handle.session.close({ code: 'revoked', message: REVOKE_CLOSE_MESSAGE });
        handle.mux.close('shutdown', REVOKE_CLOSE_MESSAGE);
        continue;
      }
      if (handle.peerName !== peer.name) {
        handle.peerName = peer.name;
        handle.log = this.#log.child({ peer: peer.name });
      }
      opensRefused += recheckPendingOpens(handle, this.#effectivePeer(handle) ?? peer, own);
      for (const active of [...handle.streams]) {
        const rules = peer.rules.forPerson(this.#gate.person(handle.fingerprint), Date.now());
        if (rules.allowsResolved(active.host, active.address, active.port, own)) continue;
        streamsReset++;
        this.#log.warn(
          { event: EVENTS.streamReset, peer: peer.name, target: active.target, reason: 'not-permitted' },
          `resetting stream to ${active.target}: no longer permitted for ${peer.name}`,
        );
        active.stream.reset('not-permitted');
        active.socket.resetAndDestroy();
      }
    }
    const devices = this.#devices.reload(peers);
    return { removed, streamsReset: streamsReset + devices.streamsReset, opensRefused: opensRefused + devices.opensRefused, peers: peers.size };
  }

  /** What `twoway status` shows. */
  status(): ServerStatus {
    const address = this.#server?.address();
    return {
      role: 'server',
      fingerprint: fingerprint(this.#options.staticKeyPair.publicKey),
      listen: address ? `${address.host}:${address.port}` : null,
      path: this.#options.path,
      peers: this.#peers.size,
      draining: this.#draining,
      devices: this.#devices.status(),
      sessions: [...this.#handles].map((h) => ({
        peer: h.peerName,
        fingerprint: h.fingerprint,
        remote: h.session.remoteAddress,
        state: h.session.closed ? 'closed' : 'established',
        since: h.session.establishedAt.toISOString(),
        lastHandshake: h.session.stats.lastHandshakeAt.toISOString(),
        rekeys: h.session.stats.rekeys,
        bytesIn: h.session.stats.bytesIn,
        bytesOut: h.session.stats.bytesOut,
        streams: h.mux.streamCount,
        dialsInFlight: h.dials.inFlight,
        dialsQueued: h.dials.queued,
        verification: this.#gate.status(h.fingerprint),
      })),
    };
  }

  /**
   * SIGTERM: refuse new sessions and streams, let open streams drain for up to the grace time,
   * then close every session with reason 'shutdown'.
   */
  async shutdown(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    const deadline = Date.now() + this.#options.shutdownGraceMs;
    const open = (): number => [...this.#handles].reduce((n, h) => n + h.streams.size, 0) + this.#devices.relayCount;
    this.#devices.stopAccepting();
    this.#log.info({ event: EVENTS.daemonStop, streams: open(), graceMs: this.#options.shutdownGraceMs }, 'shutting down: draining open streams');
    while (open() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const left = open();
    this.#devices.closeAll();
    for (const handle of [...this.#handles]) {
      for (const active of handle.streams) active.socket.resetAndDestroy();
      handle.mux.close('shutdown', 'server shutting down');
      handle.session.close({ code: 'shutdown', message: 'server shutting down' });
    }
    await this.#server?.close();
    this.#log.info({ event: EVENTS.daemonStop, streamsCut: left }, 'stopped');
  }
}

export interface ServerStatus {
  readonly role: 'server';
  readonly fingerprint: string;
  readonly listen: string | null;
  readonly path: string;
  readonly peers: number;
  readonly draining: boolean;
  /** Connected devices and the services they announced. */
  readonly devices: readonly DeviceStatus[];
  readonly sessions: ReadonlyArray<{
    peer: string;
    fingerprint: string;
    remote: string;
    state: string;
    since: string;
    lastHandshake: string;
    rekeys: number;
    bytesIn: number;
    bytesOut: number;
    streams: number;
    /** Target dials running, and opens waiting for a dial slot (`dials_in_flight`). */
    dialsInFlight: number;
    dialsQueued: number;
    /** The user verification the session's key holds (method, identity, expiry), or null. */
    verification: VerificationStatus | null;
  }>;
}
