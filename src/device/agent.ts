/**
 * The device agent's half of device endpoints: the services this client exposes (`[[service]]`),
 * its own check of who may reach them, the dial to the local service, the inner end-to-end
 * session, and the announcement of its service names to the server. A stream is accepted only if
 * the server routed it here (its policy) AND this config allows the user's key; for
 * mode `e2e` the user must then prove that key in the inner handshake, and the local service is
 * dialed only once the user has confirmed it (a replayed handshake message dials nothing). A
 * `reverse` open (no inner session: the server vouches) is dialed before it is accepted, as the
 * server dials its targets, so a refusal is an OPEN_FAIL with its reason.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { KeyPair } from '../crypto/keys.js';
import { decodeRelayedTarget, type RelayedOpen } from './target.js';
import { writeAnnouncement } from './announcement.js';
import { e2eRespond } from './e2e/e2e-stream.js';
import { dialTarget } from '../forward/dial-target.js';
import type { PipeResult } from '../forward/pipe.js';
import { serveStream } from '../forward/serve-stream.js';
import { EVENTS } from '../log/events.js';
import type { ReasonCode } from '../mux/reason.js';
import type { MuxSession } from '../mux/session.js';
import type { StreamRequest } from '../mux/stream-request.js';
import type { MuxStream } from '../mux/stream.js';
import { compileRules, type AccessRules } from '../policy/access-rules.js';

/** Dialing a local service must finish within this long. */
export const SERVICE_DIAL_TIMEOUT_MS = 10_000;

/** A service this client exposes as a device agent (`[[service]]`). */
export interface ServiceConfig {
  readonly name: string;
  /** `host:port` the agent connects to (usually on loopback). */
  readonly target: string;
  /** Base64 public keys, `NAME=KEY` (the name only labels the key), or "*" (whoever the server admits). */
  readonly allow: readonly string[];
  /** Whether the server's reverse listeners may reach it (plain TCP at the server). */
  readonly reverse: boolean;
}

interface Service extends ServiceConfig {
  readonly rules: AccessRules;
}

interface ActiveServiceStream {
  readonly service: string;
  readonly target: string;
  readonly open: RelayedOpen;
  readonly stream: Duplex;
  /** The local service's socket; undefined while an end-to-end stream waits for its dial. */
  socket: net.Socket | undefined;
}

/** Log fields of a service stream. */
interface StreamFields {
  readonly user: string;
  readonly service: string;
  readonly mode: RelayedOpen['mode'];
}

type Refuse = (reason: Parameters<StreamRequest['reject']>[0], message: string) => void;

/**
 * Whether `allow` admits a user with public key `userKey` (canonical base64, as the server relays
 * it; the inner handshake then proves it). Entries are validated by the config reader: a key,
 * `NAME=KEY` (the name is a label; only the key is compared), or `*` (anyone the server admits).
 * The server's name for the user is never enough (issue 13 item 5).
 */
export function serviceAllows(allow: readonly string[], userKey: string): boolean {
  if (userKey === '') return false;
  return allow.some((a) => a === '*' || allowedKey(a) === userKey);
}

/** The key of an `allow` entry: the entry itself, or what follows `NAME=` (a key ends in its only `=`). */
function allowedKey(entry: string): string {
  const eq = entry.indexOf('=');
  return eq >= 0 && eq < entry.length - 1 ? entry.slice(eq + 1) : entry;
}

export class DeviceAgent {
  readonly #keyPair: KeyPair;
  readonly #log: Logger;
  #services = new Map<string, Service>();
  readonly #active = new Set<ActiveServiceStream>();

  constructor(services: readonly ServiceConfig[], staticKeyPair: KeyPair, logger: Logger) {
    this.#keyPair = staticKeyPair;
    this.#log = logger;
    this.#services = compile(services);
  }

  get size(): number {
    return this.#services.size;
  }

  /**
   * Puts a new set of services in force (reload): open streams whose service is gone, changed,
   * or no longer admits their user are reset at once. Returns whether the names changed (then the
   * caller announces again) and how many streams were reset.
   */
  setServices(services: readonly ServiceConfig[]): { namesChanged: boolean; reset: number } {
    const before = [...this.#services.keys()].sort().join(',');
    this.#services = compile(services);
    let reset = 0;
    for (const a of [...this.#active]) {
      const s = this.#services.get(a.service);
      if (s !== undefined && s.target === a.target && this.#admits(s, a.open) === undefined) continue;
      reset++;
      this.#log.warn(
        { event: EVENTS.streamReset, user: a.open.user, service: a.service, reason: 'not-permitted' },
        `resetting stream of ${a.open.user} to ${a.service}: no longer allowed by this device`,
      );
      a.stream.destroy();
      a.socket?.resetAndDestroy();
    }
    return { namesChanged: before !== [...this.#services.keys()].sort().join(','), reset };
  }

  /** Why `open` is refused by service `s`, or undefined when it is admitted. */
  #admits(s: Service, open: RelayedOpen): string | undefined {
    if (open.mode === 'reverse') return s.reverse ? undefined : `service ${s.name} does not accept reverse-listener connections`;
    return serviceAllows(s.allow, open.userKey) ? undefined : `user ${open.user} may not reach service ${s.name} on this device`;
  }

  /** Opens the `@services` stream and writes the names; errors are logged, never thrown. */
  announce(mux: MuxSession): void {
    writeAnnouncement(mux, [...this.#services.keys()], this.#log);
  }

  /** The mux's onStreamRequest for a device agent. */
  handle(request: StreamRequest): void {
    const open = decodeRelayedTarget(request.target);
    if (open === undefined) {
      this.#log.warn({ event: EVENTS.deviceStreamRefused, reason: 'not-permitted' }, 'refused a stream that is not a relayed device open');
      request.reject('not-permitted', 'this client accepts only device service opens');
      return;
    }
    const fields: StreamFields = { user: open.user, service: open.service, mode: open.mode };
    const refuse: Refuse = (reason, message) => {
      this.#log.warn({ event: EVENTS.deviceStreamRefused, ...fields, reason, detail: message }, `refused ${open.user} -> ${open.service}: ${message}`);
      request.reject(reason, message);
    };
    const service = this.#services.get(open.service);
    if (service === undefined) {
      refuse('unreachable', `no service ${open.service} on this device`);
      return;
    }
    const why = this.#admits(service, open);
    if (why !== undefined) {
      refuse('not-permitted', why);
      return;
    }
    if (open.mode === 'e2e') this.#openEndToEnd(request, open, service, fields);
    else this.#dialThenAccept(request, open, service, fields, refuse);
  }

  /** `reverse` mode: dial first, then accept, so a failed dial is a refusal with its reason. */
  #dialThenAccept(request: StreamRequest, open: RelayedOpen, service: Service, fields: StreamFields, refuse: Refuse): void {
    const started = Date.now();
    serveStream({
      dialing: dialTarget(service.target, { rules: service.rules, timeoutMs: SERVICE_DIAL_TIMEOUT_MS, signal: request.signal }),
      settled: () => request.cancelled,
      // Checked again: a reload may have happened during the dial.
      recheck: () => {
        const now = this.#services.get(open.service);
        return now === undefined || this.#admits(now, open) !== undefined ? `service ${open.service} changed during the open` : undefined;
      },
      accept: () => request.accept(),
      refuse,
      dialFailure: (err) => `service ${open.service}: ${err.message}`,
      onOpen: (stream, dialed) => this.#opened({ service: open.service, target: service.target, open, stream, socket: dialed.socket }, fields, started),
    });
  }

  /**
   * `e2e` mode: accept, run the inner handshake, and dial the service only once the user has
   * confirmed it. A failure after the accept resets the stream with its reason (the user's
   * application sees a reset either way; the user's log has the reason).
   */
  #openEndToEnd(request: StreamRequest, open: RelayedOpen, service: Service, fields: StreamFields): void {
    const started = Date.now();
    let accepted: MuxStream;
    try {
      accepted = request.accept();
    } catch {
      return;
    }
    const stream = e2eRespond(accepted, { staticKeyPair: this.#keyPair, expectedUserKey: Buffer.from(open.userKey, 'base64'), service: open.service });
    const active: ActiveServiceStream = { service: open.service, target: service.target, open, stream, socket: undefined };
    this.#active.add(active);
    const dialAbort = new AbortController();
    const fail = (reason: ReasonCode, message: string): void => {
      this.#active.delete(active);
      dialAbort.abort();
      this.#log.warn({ event: EVENTS.deviceStreamRefused, ...fields, reason, detail: message }, `refused ${open.user} -> ${open.service}: ${message}`);
      accepted.reset(reason);
      stream.destroy();
    };
    stream.on('error', (err: Error) => {
      if (active.socket === undefined && this.#active.has(active)) fail('error', err.message);
    });
    stream.once('close', () => {
      dialAbort.abort();
      if (active.socket === undefined) this.#active.delete(active);
    });
    // The stream is in #active from the accept on, so a reload that changes the service or no
    // longer admits the user destroys it (setServices); nothing needs checking again here.
    stream.once('open', () => {
      serveStream({
        dialing: dialTarget(service.target, { rules: service.rules, timeoutMs: SERVICE_DIAL_TIMEOUT_MS, signal: dialAbort.signal }),
        settled: () => stream.destroyed || !this.#active.has(active),
        accept: () => stream,
        refuse: fail,
        dialFailure: (err) => `service ${open.service}: ${err.message}`,
        onOpen: (_stream, dialed) => {
          active.socket = dialed.socket;
          return this.#opened(active, fields, started);
        },
      });
    });
  }

  /** Piped to the local service: logs the open; returns what logs the close. */
  #opened(active: ActiveServiceStream, fields: StreamFields, started: number): (r: PipeResult) => void {
    const { open } = active;
    this.#active.add(active);
    this.#log.info(
      { event: EVENTS.deviceStreamOpen, ...fields, target: active.target, setupMs: Date.now() - started },
      `${open.user} -> ${open.service} (${active.target}) open`,
    );
    return (r) => {
      this.#active.delete(active);
      this.#log.info(
        {
          event: EVENTS.deviceStreamClose,
          ...fields,
          bytesToService: r.bytesToSocket,
          bytesFromService: r.bytesFromSocket,
          durationMs: r.durationMs,
          how: r.how,
          ...(r.error ? { err: r.error.message } : {}),
        },
        `${open.user} -> ${open.service} closed (${r.how})`,
      );
    };
  }

  status(): Array<{ name: string; target: string; streams: number }> {
    return [...this.#services.values()].map((s) => ({
      name: s.name,
      target: s.target,
      streams: [...this.#active].filter((a) => a.service === s.name).length,
    }));
  }

  /** Shutdown: every service stream reset. */
  closeAll(): void {
    for (const a of this.#active) {
      a.stream.destroy();
      a.socket?.resetAndDestroy();
    }
  }
}

function compile(services: readonly ServiceConfig[]): Map<string, Service> {
  return new Map(services.map((s) => [s.name, { ...s, rules: compileRules([s.target]) }]));
}
