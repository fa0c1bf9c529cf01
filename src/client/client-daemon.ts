/**
 * The client daemon's composition root: local listeners that stay up (`local-listeners.ts`), one
 * secure session that is re-established with capped, jittered backoff (`connect-loop.ts`), and a
 * multiplexer inside it. Connections that arrive while the tunnel is down wait up to
 * `connectWaitMs`, then get a clear refusal.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { fingerprint, type KeyPair } from '../crypto/keys.js';
import { DIAL_TIMEOUT_MS } from '../forward/dial-target.js';
import { EVENTS } from '../log/events.js';
import { OPEN_QUEUE_WAIT_MS, type MuxLimits } from '../mux/mux-limits.js';
import { MuxStreamError } from '../mux/reason.js';
import { MuxSession } from '../mux/session.js';
import { connectSecure, type ConnectSecureOptions } from '../session/connect-secure.js';
import type { SessionLimits } from '../session/session-limits.js';
import type { SecureSession } from '../session/secure-session.js';
import type { ServiceConfig } from '../device/agent.js';
import { parseDeviceTarget, type DeviceTarget } from '../device/target.js';
import { ConnectLoop } from './connect-loop.js';
import { DeferredStream } from './deferred-stream.js';
import { LocalListeners, type ClientForward, type ClientSocks, type ListenerChanges } from './local-listeners.js';
import { DeviceAgent } from '../device/agent.js';
import { isE2EError } from '../device/e2e/e2e-stream.js';
import { openUserStream } from '../device/user-stream.js';
import { OPEN_ANSWER_MARGIN_MS, answerWithin } from './open-answer.js';
import { OpenPacer } from './open-pacer.js';
import { VERIFY_TARGET, VERIFY_VERSION, verifyRequest, type VerifyMessage } from '../verify/verify-exchange.js';

export type { ClientForward, ClientSocks } from './local-listeners.js';
export { AUTH_REFUSED_HOLD_MS, ON_DEMAND_MIN_INTERVAL_MS } from './connect-loop.js';

export interface ClientDaemonOptions {
  readonly serverUrls: readonly string[];
  readonly serverPublicKeys: readonly Uint8Array[];
  readonly staticKeyPair: KeyPair;
  readonly psk?: Uint8Array;
  readonly proxy?: string;
  readonly ca?: Buffer;
  readonly forwards: readonly ClientForward[];
  readonly socks: readonly ClientSocks[];
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly connectWaitMs: number;
  /** The client's `dial_timeout_ms`: an open's answer must come within it plus OPEN_ANSWER_MARGIN_MS. */
  readonly dialTimeoutMs?: number;
  /** How long an open may wait for the server's open limits (default OPEN_QUEUE_WAIT_MS). */
  readonly openQueueWaitMs?: number;
  readonly sessionLimits: Partial<SessionLimits>;
  readonly muxLimits: Partial<MuxLimits>;
  readonly logger: Logger;
  /** Device name -> pinned public key (`[[device]]`): targets on them are end to end. */
  readonly devicePins?: ReadonlyMap<string, Uint8Array>;
  /** Services this client exposes as a device agent (`[[service]]`). */
  readonly services?: readonly ServiceConfig[];
  /** Stop after the first failed connection instead of retrying (one-off commands). */
  readonly once?: boolean;
  /**
   * Establishes one secure session (default connectSecure: WebSocket to the URL). Tests pass one
   * that runs the real handshake over in-memory channels (test/helpers/daemon-pair.ts).
   */
  readonly connect?: (options: ConnectSecureOptions) => Promise<SecureSession>;
  /** The backoff's jitter source, in [0, 1) (default Math.random). */
  readonly random?: () => number;
}

/** What `twoway reconnect` reports: the client's state once the attempt it asked for ended. */
export interface ReconnectResult {
  readonly state: 'connected' | 'connecting' | 'failed';
  readonly lastError: string | null;
}

export class ClientDaemon {
  readonly #o: ClientDaemonOptions;
  readonly #log: Logger;
  #session: SecureSession | undefined;
  #mux: MuxSession | undefined;
  /** Paces this session's opens to the server's advertised limits. */
  #pacer: OpenPacer | undefined;
  readonly #listeners: LocalListeners;
  readonly #loop: ConnectLoop;
  #waiters = new Set<{ resolve(mux: MuxSession): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  #connectedSince: Date | undefined;
  #sessionsOpened = 0;
  #firstSession: { promise: Promise<void>; resolve(): void; reject(err: Error): void };
  readonly #services: DeviceAgent;
  #pins: ReadonlyMap<string, Uint8Array>;
  /** The user verification the server last reported for this key (`twoway login`, status). */
  #verification: ClientVerification | null = null;

  constructor(options: ClientDaemonOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#services = new DeviceAgent(options.services ?? [], options.staticKeyPair, options.logger);
    this.#pins = options.devicePins ?? new Map();
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    this.#firstSession = { promise, resolve, reject };
    this.#listeners = new LocalListeners((target) => this.openStream(target), options.logger);
    this.#loop = new ConnectLoop({
      serverUrls: options.serverUrls,
      connect: (url) => this.#connectSecure(url),
      runSession: (session) => this.#runSession(session),
      reconnectMinMs: options.reconnectMinMs,
      reconnectMaxMs: options.reconnectMaxMs,
      ...(options.random ? { random: options.random } : {}),
      ...(options.once ? { once: true, onGiveUp: (err: Error) => this.#firstSession.reject(err) } : {}),
      logger: options.logger,
    });
  }

  /** Resolves when the first session is up (or rejects on the first failure with `once`). */
  get firstSession(): Promise<void> {
    return this.#firstSession.promise;
  }

  get connected(): boolean {
    return this.#mux !== undefined && !this.#mux.closed;
  }

  /** Starts the local listeners, then the connection loop. */
  async start(): Promise<void> {
    await this.listen();
    this.connect();
  }

  /**
   * Starts the configured local listeners; when one cannot bind, those already bound are closed
   * and the error is thrown (a daemon that starts has all of them).
   */
  async listen(): Promise<void> {
    try {
      await this.setListeners(this.#o.forwards, this.#o.socks);
    } catch (err) {
      await this.#listeners.clear();
      throw err;
    }
  }

  /** Starts the connection loop (after every local resource is in place). */
  connect(): void {
    void this.#loop.run();
  }

  /**
   * Puts a set of forwards and SOCKS listeners in force (start and reload): listeners that stay
   * keep running with their connections; removed ones close; new ones start. A listener that
   * cannot bind fails the call after the others are in place.
   */
  async setListeners(forwards: readonly ClientForward[], socks: readonly ClientSocks[]): Promise<ListenerChanges> {
    return this.#listeners.set(forwards, socks);
  }

  /** Addresses the listeners actually bound (port 0 resolved), in config order. */
  listenerAddresses(): Array<{ kind: string; host: string; port: number; target?: string }> {
    return this.#listeners.addresses();
  }

  /**
   * Puts reloaded device pins and services in force: streams of services that are gone or no
   * longer allow their user are reset; the server hears the new service names.
   */
  setDevices(pins: ReadonlyMap<string, Uint8Array>, services: readonly ServiceConfig[]): { reset: number } {
    this.#pins = pins;
    const result = this.#services.setServices(services);
    if (result.namesChanged && this.#mux && !this.#mux.closed) this.#services.announce(this.#mux);
    return { reset: result.reset };
  }

  /**
   * Opens a stream now, or once the tunnel is back (bounded by connectWaitMs). A device target
   * (`DEVICE:SERVICE`, `SERVICE.DEVICE.twoway:PORT`) is end to end with the device's pinned key.
   */
  openStream(target: string): Duplex {
    let stream: Duplex;
    let device: DeviceTarget | undefined;
    try {
      device = parseDeviceTarget(target);
      stream = device
        ? openUserStream(device, { pins: this.#pins, staticKeyPair: this.#o.staticKeyPair, open: (t) => this.#openRaw(t) })
        : this.#openRaw(target);
    } catch (err) {
      stream = new DeferredStream(Promise.reject(err as Error));
    }
    stream.on('error', (err: Error & { code?: string; reason?: string }) => {
      if (err.code === 'ERR_MUX_STREAM_REFUSED') {
        this.#log.warn({ event: EVENTS.streamRefused, target, reason: err.reason }, `stream to ${target} refused: ${err.message}`);
      } else if (isE2EError(err)) {
        this.#log.warn({ event: EVENTS.streamRefused, target, code: err.code }, `stream to ${target} failed: ${err.message}`);
      } else if (err.code === 'ERR_MUX_STREAM_RESET' && device) {
        // A device accepts an end-to-end stream before it dials its service: a failed dial
        // arrives as a reset with the dial's reason.
        this.#log.warn({ event: EVENTS.streamReset, target, reason: err.reason }, `stream to ${target} reset by the device: ${err.message}`);
      }
    });
    return stream;
  }

  #openRaw(target: string): Duplex {
    const answerMs = (this.#o.dialTimeoutMs ?? DIAL_TIMEOUT_MS) + OPEN_ANSWER_MARGIN_MS;
    const pacer = this.#pacer;
    // The answer's deadline starts when the OPEN is sent, not while it waits in the pacer's queue.
    if (this.#mux && !this.#mux.closed && pacer?.mux === this.#mux) {
      const now = pacer.tryOpen(target);
      if (now !== undefined) return answerWithin(now, answerMs);
      const queued = pacer.open(target);
      return new DeferredStream(
        queued.stream.then((stream) => answerWithin(stream, answerMs)),
        queued.cancel,
      );
    }
    let cancelled = false;
    let cancel: (() => void) | undefined;
    const stream = this.#waitForMux().then(() => {
      if (cancelled) throw this.#downError('cancelled');
      const queued = this.#pacer!.open(target);
      cancel = queued.cancel;
      return queued.stream.then((opened) => answerWithin(opened, answerMs));
    });
    return new DeferredStream(stream, () => {
      cancelled = true;
      cancel?.();
    });
  }

  #waitForMux(): Promise<MuxSession> {
    if (this.#loop.stopping) return Promise.reject(this.#downError('the client is shutting down'));
    this.#loop.reconnectOnDemand();
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(
            this.#downError(
              `the tunnel is down and did not come back within ${this.#o.connectWaitMs} ms${this.#loop.lastError ? ` (last error: ${this.#loop.lastError})` : ''}`,
            ),
          );
        }, this.#o.connectWaitMs).unref(),
      };
      this.#waiters.add(waiter);
    });
  }

  /**
   * `twoway reconnect`: tries now, even within the hold after an authentication refusal (the
   * user asked), and resolves once that attempt ended or after `timeoutMs`.
   */
  async reconnectNow(timeoutMs: number): Promise<ReconnectResult> {
    if (this.connected) return { state: 'connected', lastError: null };
    await this.#loop.reconnectNow(timeoutMs);
    if (this.connected) return { state: 'connected', lastError: null };
    const lastError = this.#loop.lastError;
    // Back in its backoff after a failure: that attempt failed; otherwise one is still under way.
    return { state: this.#loop.waiting && lastError !== undefined ? 'failed' : 'connecting', lastError: lastError ?? null };
  }

  /**
   * `twoway login` (control cmd `verify`): sends one request of the verification exchange on a
   * fresh `twoway:verify` stream of the current session, with `"v":1` and that session's channel
   * binding, and resolves with the server's answer (docs/PROTOCOL.md section 13). Waits for the
   * tunnel as an open does.
   */
  async verify(message: VerifyMessage): Promise<VerifyMessage> {
    if (!this.connected) await this.#waitForMux();
    const session = this.#session;
    const pacer = this.#pacer;
    if (session === undefined || pacer === undefined) throw this.#downError('the tunnel is down');
    const stream = await pacer.open(VERIFY_TARGET).stream;
    const answer = await verifyRequest(stream, { ...message, v: VERIFY_VERSION, binding: Buffer.from(session.binding).toString('base64url') });
    if (answer.ok === true && typeof answer.expires_at === 'string' && typeof answer.identity === 'string') {
      const asked = typeof message.method === 'string' ? message.method : '';
      const method = asked === 'query' ? (this.#verification?.method ?? (typeof answer.required === 'string' ? answer.required : '')) : asked;
      this.#verification = { method, identity: answer.identity, expiresAt: answer.expires_at };
    } else if (answer.ok === true && answer.verified === false) {
      this.#verification = null;
    }
    return answer;
  }

  #downError(message: string): Error {
    return new MuxStreamError('ERR_MUX_STREAM_REFUSED', message, 'tunnel-closed');
  }

  /** One secure session with the server at `url` (connectSecure unless the options name another). */
  #connectSecure(url: string): Promise<SecureSession> {
    return (this.#o.connect ?? connectSecure)({
      url,
      staticKeyPair: this.#o.staticKeyPair,
      serverPublicKeys: this.#o.serverPublicKeys,
      ...(this.#o.psk ? { psk: this.#o.psk } : {}),
      ...(this.#o.proxy ? { proxy: this.#o.proxy } : {}),
      ...(this.#o.ca ? { tls: { ca: this.#o.ca } } : {}),
      limits: this.#o.sessionLimits,
      logger: this.#log,
    });
  }

  /** Runs a session's multiplexer: the waiting opens proceed, the services are announced; resolves once it closed. */
  #runSession(session: SecureSession): Promise<void> {
    const mux = new MuxSession(session, {
      role: 'client',
      limits: this.#o.muxLimits,
      logger: this.#log,
      ...(this.#services.size > 0 ? { onStreamRequest: (request) => this.#services.handle(request) } : {}),
    });
    this.#session = session;
    this.#mux = mux;
    this.#pacer = new OpenPacer(mux, { waitMs: this.#o.openQueueWaitMs ?? OPEN_QUEUE_WAIT_MS });
    this.#connectedSince = new Date();
    this.#sessionsOpened++;
    this.#log.info(
      { event: EVENTS.sessionOpen, url: this.#loop.serverUrl, fingerprint: fingerprint(session.peerPublicKey), remote: session.remoteAddress },
      `session established with ${this.#loop.serverUrl}`,
    );
    this.#firstSession.resolve();
    if (this.#services.size > 0) this.#services.announce(mux);
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(mux);
    }
    this.#waiters.clear();
    return new Promise((resolve) => {
      mux.onClose((info) => {
        this.#mux = undefined;
        this.#session = undefined;
        this.#connectedSince = undefined;
        this.#log.debug({ event: EVENTS.muxClosed, reason: info.code, remoteClose: info.remote, detail: info.message }, `streams ended (${info.code})`);
        // After the server's GOAWAY the mux closes the session with the server's code itself.
        if (!session.closed && !info.remote) session.close({ code: 'normal' });
        resolve();
      });
    });
  }

  status(): ClientStatus {
    const s = this.#session;
    return {
      role: 'client',
      fingerprint: fingerprint(this.#o.staticKeyPair.publicKey),
      server: this.#loop.serverUrl ?? null,
      state: this.connected ? 'connected' : this.#loop.stopping ? 'stopping' : 'connecting',
      since: this.#connectedSince?.toISOString() ?? null,
      lastError: this.#loop.lastError ?? null,
      sessionsOpened: this.#sessionsOpened,
      session: s
        ? {
            serverFingerprint: fingerprint(s.peerPublicKey),
            remote: s.remoteAddress,
            lastHandshake: s.stats.lastHandshakeAt.toISOString(),
            rekeys: s.stats.rekeys,
            bytesIn: s.stats.bytesIn,
            bytesOut: s.stats.bytesOut,
            streams: this.#mux?.streamCount ?? 0,
          }
        : null,
      services: this.#services.status(),
      listeners: this.#listeners.status(),
      verification: this.#verification !== null && Date.parse(this.#verification.expiresAt) > Date.now() ? this.#verification : null,
    };
  }

  async stop(): Promise<void> {
    if (this.#loop.stopping) return;
    this.#loop.stop();
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(this.#downError('the client is shutting down'));
    }
    this.#waiters.clear();
    await this.#listeners.close();
    this.#services.closeAll();
    this.#mux?.close('shutdown', 'client shutting down');
    this.#session?.close({ code: 'shutdown', message: 'client shutting down' });
    this.#log.info({ event: EVENTS.daemonStop }, 'stopped');
  }
}

export interface ClientStatus {
  readonly role: 'client';
  readonly fingerprint: string;
  readonly server: string | null;
  readonly state: 'connected' | 'connecting' | 'stopping';
  readonly since: string | null;
  readonly lastError: string | null;
  readonly sessionsOpened: number;
  readonly session: {
    serverFingerprint: string;
    remote: string;
    lastHandshake: string;
    rekeys: number;
    bytesIn: number;
    bytesOut: number;
    streams: number;
  } | null;
  /** Services this client exposes as a device agent (empty for a plain client). */
  readonly services: ReadonlyArray<{ name: string; target: string; streams: number }>;
  readonly listeners: ReadonlyArray<{ kind: string; listen: string; target: string | null; up: boolean }>;
  /** The user verification the server last reported (`twoway login`), while it holds; else null. */
  readonly verification: ClientVerification | null;
}

export interface ClientVerification {
  readonly method: string;
  readonly identity: string;
  readonly expiresAt: string;
}
