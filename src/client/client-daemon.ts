/**
 * The client daemon's composition root: local listeners that stay up, one secure session that is
 * re-established with capped, jittered backoff, and a multiplexer inside it. Connections that
 * arrive while the tunnel is down wait up to `connectWaitMs`, then get a clear refusal.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { fingerprint, type KeyPair } from '../crypto/keys.js';
import { TwowayError } from '../errors.js';
import { DIAL_TIMEOUT_MS } from '../forward/dial-target.js';
import { startLocalForward } from '../forward/local-forward.js';
import { formatLocalListen, type BoundAddress, type LocalAccess, type LocalListen } from '../forward/local-listener.js';
import { startSocksServer } from '../forward/socks5.js';
import { EVENTS } from '../log/events.js';
import { OPEN_QUEUE_WAIT_MS, type MuxLimits } from '../mux/mux-limits.js';
import { MuxStreamError } from '../mux/reason.js';
import { MuxSession } from '../mux/session.js';
import { connectSecure, type ConnectSecureOptions } from '../session/connect-secure.js';
import type { SessionLimits } from '../session/session-limits.js';
import type { SecureSession } from '../session/secure-session.js';
import type { ServiceConfig } from '../device/agent.js';
import { parseDeviceTarget, type DeviceTarget } from '../device/target.js';
import { backoffDelayMs } from './backoff.js';
import { DeferredStream } from './deferred-stream.js';
import { DeviceAgent } from '../device/agent.js';
import { isE2EError } from '../device/e2e/e2e-stream.js';
import { openUserStream } from '../device/user-stream.js';
import { OPEN_ANSWER_MARGIN_MS, answerWithin } from './open-answer.js';
import { OpenPacer } from './open-pacer.js';

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

/** A session that lasted this long resets the backoff. */
const STABLE_SESSION_MS = 30_000;
/**
 * A local connection that arrives while the client waits out its backoff makes it try at once
 * (a laptop back from sleep), at most once in this interval (issue 12 item 9).
 */
export const ON_DEMAND_MIN_INTERVAL_MS = 5_000;
/** After the server refused this client's key, only `twoway reconnect` cuts the backoff short for this long. */
export const AUTH_REFUSED_HOLD_MS = 60_000;
/** Failures that mean the server (or our pin) refuses us: retrying on demand would only hammer it. */
const AUTH_REFUSED_CODES: ReadonlySet<string> = new Set([
  'ERR_SESSION_AUTH',
  'ERR_SESSION_SERVER_KEY_MISMATCH',
  'ERR_SESSION_PROTOCOL_VERSION',
  'ERR_SESSION_DECRYPT',
]);

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
  #serverUrl: string | undefined;
  #listeners: Listener[] = [];
  #waiters = new Set<{ resolve(mux: MuxSession): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  #stopping = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Ends the backoff wait early; set only while the loop waits out a backoff delay. */
  #wake: (() => void) | undefined;
  #lastOnDemandAt = -Infinity;
  #authRefusedAt = -Infinity;
  /** Called when the connection attempt under way (or the next one) has ended. */
  #attemptWaiters: Array<() => void> = [];
  #lastError: string | undefined;
  #connectedSince: Date | undefined;
  #sessionsOpened = 0;
  #firstSession: { promise: Promise<void>; resolve(): void; reject(err: Error): void };
  readonly #services: DeviceAgent;
  #pins: ReadonlyMap<string, Uint8Array>;

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
      await Promise.all(this.#listeners.splice(0).map((l) => l.close()));
      throw err;
    }
  }

  /** Starts the connection loop (after every local resource is in place). */
  connect(): void {
    void this.#connectLoop();
  }

  /**
   * Puts a set of forwards and SOCKS listeners in force (start and reload): listeners that stay
   * keep running with their connections; removed ones close; new ones start. A listener that
   * cannot bind fails the call after the others are in place.
   */
  async setListeners(forwards: readonly ClientForward[], socks: readonly ClientSocks[]): Promise<{ added: number; removed: number; kept: number }> {
    const open = (target: string): Duplex => this.openStream(target);
    const key = (kind: string, listen: string, target?: string, access?: LocalAccess): string =>
      `${kind} ${listen} ${target ?? ''} ${JSON.stringify(access ?? {})}`;
    const wanted = new Map<string, () => Promise<Listener>>();
    /** What a failure names: "forward 127.0.0.1:2222 db.corp.example:22", "socks 127.0.0.1:1080". */
    const labels = new Map<string, string>();
    for (const f of forwards) {
      const listen = formatLocalListen(f.listen);
      labels.set(key('forward', listen, f.target, f.access), `forward ${listen} ${f.target}`);
      wanted.set(key('forward', listen, f.target, f.access), async () => {
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
      labels.set(key('socks', listen, undefined, s.access), `socks ${listen}`);
      wanted.set(key('socks', listen, undefined, s.access), async () => {
        const server = await startSocksServer({ listen: s.listen, ...(s.access ? { access: s.access } : {}), open, logger: this.#log });
        const a = server.bound();
        this.#log.info({ event: EVENTS.listen, kind: 'socks', ...boundFields(a) }, `SOCKS5 on ${a ? formatLocalListen(a) : listen}`);
        return { kind: 'socks', listen, access: s.access, address: () => server.bound(), close: () => server.close() };
      });
    }
    const kept: Listener[] = [];
    const removed: Listener[] = [];
    for (const l of this.#listeners) {
      const k = key(l.kind, l.listen, l.target, l.access);
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

  /** Addresses the listeners actually bound (port 0 resolved), in config order. */
  listenerAddresses(): Array<{ kind: string; host: string; port: number; target?: string }> {
    return this.#listeners.flatMap((l) => {
      const a = l.address();
      return a && !('path' in a) ? [{ kind: l.kind, host: a.host, port: a.port, ...(l.target ? { target: l.target } : {}) }] : [];
    });
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
    if (this.#stopping) return Promise.reject(this.#downError('the client is shutting down'));
    this.#reconnectOnDemand();
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(
            this.#downError(
              `the tunnel is down and did not come back within ${this.#o.connectWaitMs} ms${this.#lastError ? ` (last error: ${this.#lastError})` : ''}`,
            ),
          );
        }, this.#o.connectWaitMs).unref(),
      };
      this.#waiters.add(waiter);
    });
  }

  /** A local connection is waiting: end the backoff wait, unless that would hammer the server. */
  #reconnectOnDemand(): void {
    if (this.#wake === undefined) return; // connected, or an attempt is under way
    const now = Date.now();
    if (now - this.#lastOnDemandAt < ON_DEMAND_MIN_INTERVAL_MS || now - this.#authRefusedAt < AUTH_REFUSED_HOLD_MS) return;
    this.#lastOnDemandAt = now;
    this.#log.info(
      { event: EVENTS.reconnectScheduled, delayMs: 0, trigger: 'on-demand', attempt: this.#attempt },
      'a local connection is waiting: reconnecting now',
    );
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    wake?.();
  }

  /**
   * `twoway reconnect`: tries now, even within the hold after an authentication refusal (the
   * user asked), and resolves once that attempt ended or after `timeoutMs`.
   */
  async reconnectNow(timeoutMs: number): Promise<ReconnectResult> {
    if (this.connected) return { state: 'connected', lastError: null };
    const ended = new Promise<void>((resolve) => this.#attemptWaiters.push(resolve));
    if (this.#wake !== undefined) {
      this.#log.info({ event: EVENTS.reconnectScheduled, delayMs: 0, trigger: 'requested', attempt: this.#attempt }, 'reconnect requested: reconnecting now');
      this.#wakeUp();
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    if (this.connected) return { state: 'connected', lastError: null };
    return { state: this.#wake !== undefined && this.#lastError !== undefined ? 'failed' : 'connecting', lastError: this.#lastError ?? null };
  }

  #attemptEnded(): void {
    for (const done of this.#attemptWaiters.splice(0)) done();
  }

  #downError(message: string): Error {
    return new MuxStreamError('ERR_MUX_STREAM_REFUSED', message, 'tunnel-closed');
  }

  async #connectLoop(): Promise<void> {
    while (!this.#stopping) {
      const session = await this.#connectOnce();
      if (this.#stopping) {
        session?.close({ code: 'shutdown' });
        return;
      }
      if (session) {
        const running = this.#runSession(session);
        this.#attemptEnded();
        const closed = await running;
        if (Date.now() - closed.startedAt >= STABLE_SESSION_MS) this.#attempt = 0;
        if (this.#stopping) return;
      } else if (this.#o.once) {
        return;
      }
      const delay = backoffDelayMs(this.#attempt++, {
        minMs: this.#o.reconnectMinMs,
        maxMs: this.#o.reconnectMaxMs,
        ...(this.#o.random ? { random: this.#o.random } : {}),
      });
      this.#log.info({ event: EVENTS.reconnectScheduled, delayMs: delay, attempt: this.#attempt }, `reconnecting in ${delay} ms`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#retryTimer = setTimeout(resolve, delay);
        if (!session) this.#attemptEnded();
      });
      this.#wake = undefined;
      if (this.#retryTimer) clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
  }

  /** Tries each server URL in order; resolves with a session or undefined when all failed. */
  async #connectOnce(): Promise<SecureSession | undefined> {
    let firstError: Error | undefined;
    for (const url of this.#o.serverUrls) {
      if (this.#stopping) return undefined;
      this.#log.debug({ event: EVENTS.connectAttempt, url }, `connecting to ${url}`);
      try {
        const session = await (this.#o.connect ?? connectSecure)({
          url,
          staticKeyPair: this.#o.staticKeyPair,
          serverPublicKeys: this.#o.serverPublicKeys,
          ...(this.#o.psk ? { psk: this.#o.psk } : {}),
          ...(this.#o.proxy ? { proxy: this.#o.proxy } : {}),
          ...(this.#o.ca ? { tls: { ca: this.#o.ca } } : {}),
          limits: this.#o.sessionLimits,
          logger: this.#log,
        });
        this.#serverUrl = url;
        this.#lastError = undefined;
        this.#authRefusedAt = -Infinity;
        return session;
      } catch (err) {
        const e = err as Error;
        firstError ??= e;
        this.#lastError = e.message;
        if (err instanceof TwowayError && AUTH_REFUSED_CODES.has(err.code)) this.#authRefusedAt = Date.now();
        this.#log.warn(
          { event: EVENTS.connectFailed, url, code: err instanceof TwowayError ? err.code : (err as NodeJS.ErrnoException).code, err: e.message },
          `connecting to ${url} failed: ${e.message}`,
        );
      }
    }
    if (this.#o.once && firstError) this.#firstSession.reject(firstError);
    return undefined;
  }

  #runSession(session: SecureSession): Promise<{ startedAt: number }> {
    const startedAt = Date.now();
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
      { event: EVENTS.sessionOpen, url: this.#serverUrl, fingerprint: fingerprint(session.peerPublicKey), remote: session.remoteAddress },
      `session established with ${this.#serverUrl}`,
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
        resolve({ startedAt });
      });
    });
  }

  status(): ClientStatus {
    const s = this.#session;
    return {
      role: 'client',
      fingerprint: fingerprint(this.#o.staticKeyPair.publicKey),
      server: this.#serverUrl ?? null,
      state: this.connected ? 'connected' : this.#stopping ? 'stopping' : 'connecting',
      since: this.#connectedSince?.toISOString() ?? null,
      lastError: this.#lastError ?? null,
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
      listeners: this.#listeners.map((l) => {
        const a = l.address();
        return { kind: l.kind, listen: a ? ('path' in a ? formatLocalListen(a) : `${a.host}:${a.port}`) : l.listen, target: l.target ?? null, up: a !== null };
      }),
    };
  }

  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#wakeUp();
    this.#attemptEnded();
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(this.#downError('the client is shutting down'));
    }
    this.#waiters.clear();
    await Promise.all(this.#listeners.map((l) => l.close()));
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
}
