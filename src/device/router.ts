/**
 * The server's half of device endpoints: the registry of connected devices and the services they
 * announced (read by announcement.ts), the routing of a user's open into a device's session, the
 * relay between the two streams, and the reverse listeners. The server checks its own policy (may this user reach this
 * device service?) at every open and on every reload; the device checks its own. Every open into
 * a device waits its turn in the device's open queue (open-queue.ts), so the server never
 * sends more than the device's session accepts (issue 13 item 1). With mode `e2e`
 * the bytes relayed are an inner Noise session the server cannot read (docs/PROTOCOL.md).
 */
import type { Logger } from 'pino';
import { ANNOUNCE_TARGET, encodeRelayedTarget, type DeviceTarget } from './target.js';
import { readAnnouncement } from './announcement.js';
import { NO_AUDIT, type AuditSink } from '../log/audit.js';
import { EVENTS } from '../log/events.js';
import { MuxStreamError, toReasonCode, type ReasonCode } from '../mux/reason.js';
import type { StreamRequest } from '../mux/stream-request.js';
import type { MuxSession } from '../mux/session.js';
import type { MuxStream } from '../mux/stream.js';
import type { SecureSession } from '../session/secure-session.js';
import { ReverseListeners, type ReverseStatus } from './reverse-listeners.js';
import type { ServerPeer, ServerPeers } from '../policy/peer-table.js';
import { relayStreams, type Relay, type RelaySide } from '../forward/relay.js';
import { DeviceOpenQueue, deviceOpenLimits, type OpenSlot } from './open-queue.js';

/** What the router needs of a session (the server's ServerSessionHandle is one). */
export interface DeviceSessionHandle {
  readonly mux: MuxSession;
  /** The peer's static public key, as its handshake proved it. */
  readonly peerKey: Uint8Array;
  /** The key's fingerprint (canonical base64): logs, status and relayed targets carry it. */
  readonly fingerprint: string;
  readonly session: Pick<SecureSession, 'close'>;
}

/** A connected device. */
interface DeviceEntry {
  readonly name: string;
  readonly handle: DeviceSessionHandle;
  services: string[];
  readonly since: Date;
  readonly reverse: ReverseListeners;
  /** Every open into the device waits its turn here (issue 13 item 1). */
  readonly opens: DeviceOpenQueue;
}

/** A user stream relayed into a device. */
interface ActiveRelay {
  readonly user: string;
  readonly userKey: Uint8Array;
  readonly device: string;
  readonly service: string;
  readonly relay: Relay;
}

export interface DeviceStatus {
  readonly name: string;
  readonly fingerprint: string;
  readonly services: string[];
  readonly since: string;
  readonly streams: number;
  readonly reverse: readonly ReverseStatus[];
}

/** A user's open relayed to a device, waiting for the device's answer. */
interface PendingRelay {
  readonly userKey: Uint8Array;
  readonly device: string;
  readonly service: string;
  revoke(): void;
}

/** The device's session ended under a stream: the user hears 'device-offline', not 'tunnel-closed'. */
function fromDeviceSide(side: RelaySide, reason: ReasonCode): ReasonCode {
  return side === 'b' && reason === 'tunnel-closed' ? 'device-offline' : reason;
}

export class DeviceRouter {
  readonly #log: Logger;
  readonly #tap: ((chunk: Buffer) => void) | undefined;
  readonly #devices = new Map<string, DeviceEntry>();
  readonly #relays = new Set<ActiveRelay>();
  /** User opens sent to a device and not yet answered; a reload refuses those it revokes. */
  readonly #pending = new Set<PendingRelay>();
  /** The allowlist in force (route and reload set it): a queued open is checked again at its turn. */
  #peers: ServerPeers | undefined;

  /** Relays counted by the server's metrics, whatever the log level. */
  readonly #audit: AuditSink;

  constructor(logger: Logger, tap?: (chunk: Buffer) => void, audit: AuditSink = NO_AUDIT) {
    this.#log = logger;
    this.#tap = tap;
    this.#audit = audit;
  }

  /** Relays and reverse-listener connections in progress (counted in the shutdown drain). */
  get relayCount(): number {
    let n = this.#relays.size;
    for (const d of this.#devices.values()) n += d.reverse.connectionCount;
    return n;
  }

  /** True while `name` has a registered, live session. */
  isOnline(name: string): boolean {
    const entry = this.#devices.get(name);
    return entry !== undefined && !entry.handle.mux.closed;
  }

  /** A device's session is up: it replaces an older session of the same device. */
  online(handle: DeviceSessionHandle, peer: ServerPeer): void {
    const older = this.#devices.get(peer.name);
    if (older !== undefined && older.handle !== handle) {
      this.#log.info(
        { event: EVENTS.deviceOffline, device: peer.name, detail: 'replaced by a newer session' },
        `device ${peer.name}: a newer session replaces the older one`,
      );
      this.#drop(older, 'replaced by a newer session');
      // The close record first, so the device learns `replaced` (a GOAWAY has no such code).
      older.handle.session.close({ code: 'replaced', message: 'replaced by a newer session' });
      older.handle.mux.close('normal', 'replaced by a newer session of the same device');
    }
    // Shaped to the server's own view of the device session's limits (its mux limits).
    const opens = new DeviceOpenQueue(deviceOpenLimits(handle.mux.limits), () => handle.mux.streamCount);
    const entry: DeviceEntry = {
      name: peer.name,
      handle,
      services: [],
      since: new Date(),
      reverse: new ReverseListeners(peer.name, handle.mux, this.#log, this.#tap, opens),
      opens,
    };
    this.#devices.set(peer.name, entry);
    this.#log.info({ event: EVENTS.deviceOnline, device: peer.name, fingerprint: handle.fingerprint }, `device ${peer.name} connected`);
    handle.mux.onClose(() => {
      if (this.#devices.get(entry.name) !== entry) return;
      this.#drop(entry, 'session ended');
      this.#log.info({ event: EVENTS.deviceOffline, device: entry.name }, `device ${entry.name} disconnected`);
    });
  }

  #drop(entry: DeviceEntry, why: string): void {
    if (this.#devices.get(entry.name) === entry) this.#devices.delete(entry.name);
    entry.opens.close(`device ${entry.name} is not connected`);
    entry.reverse.closeAll(why);
    for (const r of [...this.#relays]) if (r.device === entry.name) r.relay.reset('device-offline');
  }

  /** A device's `@services` stream: read the announcement, then put its reverse listeners in force. */
  announce(handle: DeviceSessionHandle, peer: ServerPeer, request: StreamRequest): void {
    const entry = this.#devices.get(peer.name);
    if (peer.kind !== 'device' || entry === undefined || entry.handle !== handle) {
      request.reject('not-permitted', `${ANNOUNCE_TARGET} is for devices`);
      return;
    }
    let stream: MuxStream;
    try {
      stream = request.accept();
    } catch {
      return;
    }
    readAnnouncement(stream, peer.name, this.#log, (services) => {
      entry.services = services;
      entry.reverse.sync(peer.reverse, services);
    });
  }

  /** A user's open of `target`: the server's checks, then the device's, then the relay. */
  route(user: DeviceSessionHandle, peer: ServerPeer, peers: ServerPeers, target: DeviceTarget, request: StreamRequest, log: Logger): void {
    const { device, service } = target;
    this.#peers = peers;
    const fields = { user: peer.name, device, service };
    const refuse = (reason: ReasonCode, message: string): void => {
      this.#audit({ type: 'stream-refused', via: 'device', reason });
      log.warn(
        { event: EVENTS.streamRefused, target: request.target, ...fields, reason, detail: message },
        `stream to ${device}:${service} refused: ${message}`,
      );
      request.reject(reason, message);
    };
    if (!peer.devices.allows(device, service)) {
      refuse('not-permitted', `peer ${peer.name} may not reach device ${device} service ${service}`);
      return;
    }
    const entry = this.#devices.get(device);
    if (entry === undefined || peers.device(device) === undefined || entry.handle.mux.closed) {
      refuse('device-offline', `device ${device} is not connected`);
      return;
    }
    if (!entry.services.includes(service)) {
      refuse('unreachable', `device ${device} has no service ${service}`);
      return;
    }
    this.#peers = peers;
    entry.opens.submit({
      key: user.fingerprint,
      session: user,
      signal: request.signal,
      refuse: (reason, detail) => {
        const message = reason === 'device-offline' ? `device ${device} is not connected` : `device ${device}: ${detail}`;
        this.#audit({ type: 'stream-refused', via: 'device', reason });
        // Rate-limited per user and device by the logger (src/log/rate-limit.ts).
        log.warn(
          { event: EVENTS.streamRefused, target: request.target, ...fields, reason, detail: message },
          `stream to ${device}:${service} refused: ${message}`,
        );
        request.reject(reason, message);
      },
      start: (slot) => this.#relayInto(entry, user, target, request, log, refuse, slot),
    });
  }

  /**
   * Its turn in the device's queue: checked again against the allowlist in force now (a reload
   * may have run while it waited), then opened in the device's session and relayed once the
   * device accepts. A user who gives up meanwhile cancels the device's stream (a reset of a
   * pending open costs the device one token of its no-data budget; the queue's rate keeps those
   * far below the budget's refill).
   */
  #relayInto(
    entry: DeviceEntry,
    user: DeviceSessionHandle,
    target: DeviceTarget,
    request: StreamRequest,
    log: Logger,
    refuse: (reason: ReasonCode, message: string) => void,
    slot: OpenSlot,
  ): void {
    const { device, service } = target;
    const now = this.#peers?.lookup(user.peerKey);
    if (request.cancelled) {
      slot.done();
      return;
    }
    if (now === undefined || !this.#permits(user.peerKey, device, service)) {
      slot.done();
      refuse('not-permitted', `peer ${now?.name ?? 'unknown'} may not reach device ${device} service ${service}`);
      return;
    }
    const fields = { user: now.name, device, service };
    let toDevice: MuxStream;
    try {
      toDevice = entry.handle.mux.openStream(encodeRelayedTarget({ service, mode: 'e2e', user: now.name, userKey: user.fingerprint }));
    } catch (err) {
      slot.done();
      refuse('device-offline', `device ${device}: ${(err as Error).message}`);
      return;
    }
    /** The device answered (or a reload refused the open): later answers are not relayed. */
    let opened = false;
    const onCancel = (): void => {
      this.#pending.delete(pending);
      toDevice.reset('cancel');
    };
    const pending: PendingRelay = {
      userKey: user.peerKey,
      device,
      service,
      revoke: () => {
        request.signal.removeEventListener('abort', onCancel);
        this.#pending.delete(pending);
        opened = true;
        toDevice.reset('cancel');
        refuse('not-permitted', `peer ${now.name} may no longer reach device ${device} service ${service}`);
      },
    };
    this.#pending.add(pending);
    request.signal.addEventListener('abort', onCancel, { once: true });
    const started = Date.now();
    toDevice.once('close', () => slot.done());
    toDevice.once('error', (err: Error & { reason?: unknown }) => {
      slot.answered();
      if (opened) return; // relaying: the relay carries the reset to the user
      this.#pending.delete(pending);
      request.signal.removeEventListener('abort', onCancel);
      if (request.cancelled) return;
      const reason = toReasonCode(err.reason);
      if (reason === 'tunnel-closed') refuse('device-offline', `device ${device} is not connected`);
      // The device's own words travel as a field of the refusal (OPEN_FAIL's message), not in its text.
      else refuse(reason, `device ${device}: ${err instanceof MuxStreamError && err.detail !== '' ? err.detail : 'refused'}`);
    });
    toDevice.once('open', () => {
      if (opened) return; // revoked while the device answered
      opened = true;
      slot.answered();
      this.#pending.delete(pending);
      request.signal.removeEventListener('abort', onCancel);
      // Just before accepting: the allowlist in force now, not the one the open arrived under.
      if (!this.#permits(user.peerKey, device, service)) {
        toDevice.reset('cancel');
        refuse('not-permitted', `peer ${now.name} may no longer reach device ${device} service ${service}`);
        return;
      }
      let fromUser: MuxStream;
      try {
        fromUser = request.accept();
      } catch {
        toDevice.reset('cancel');
        return;
      }
      const tap = this.#tap;
      const active: ActiveRelay = {
        user: now.name,
        userKey: user.peerKey,
        device,
        service,
        relay: relayStreams(fromUser, toDevice, {
          ...(tap ? { tap: (_d: string, c: Buffer) => tap(c) } : {}),
          translate: fromDeviceSide,
          onDone: (r) => {
            this.#relays.delete(active);
            slot.done();
            this.#audit({ type: 'stream-closed', via: 'device', bytesToTarget: r.aToB, bytesFromTarget: r.bToA });
            log.info(
              {
                event: EVENTS.deviceStreamClose,
                stream: fromUser.id,
                ...fields,
                bytesToDevice: r.aToB,
                bytesFromDevice: r.bToA,
                durationMs: r.durationMs,
                how: r.how,
                ...(r.reason ? { reason: r.reason } : {}),
              },
              `stream ${fromUser.id} to ${device}:${service} closed (${r.how})`,
            );
          },
        }),
      };
      this.#relays.add(active);
      this.#audit({ type: 'stream-opened', via: 'device' });
      log.info(
        { event: EVENTS.deviceStreamOpen, stream: fromUser.id, ...fields, openMs: Date.now() - started },
        `stream ${fromUser.id} open to ${device}:${service}`,
      );
    });
  }

  /** True when the allowlist in force lets the key `userKey` reach `device:service`. */
  #permits(userKey: Uint8Array, device: string, service: string): boolean {
    const user = this.#peers?.lookup(userKey);
    return user !== undefined && user.devices.allows(device, service) && this.#peers?.device(device) !== undefined;
  }

  /**
   * A new allowlist: relays the user may no longer have reset, opens still waiting for the
   * device's answer refused; reverse listeners updated.
   */
  reload(peers: ServerPeers): { streamsReset: number; opensRefused: number } {
    this.#peers = peers;
    let opensRefused = 0;
    for (const p of [...this.#pending]) {
      if (this.#permits(p.userKey, p.device, p.service)) continue;
      opensRefused++;
      p.revoke();
    }
    let reset = 0;
    for (const r of [...this.#relays]) {
      const user = peers.lookup(r.userKey);
      if (user !== undefined && user.devices.allows(r.device, r.service)) continue;
      reset++;
      this.#log.warn(
        { event: EVENTS.streamReset, peer: r.user, device: r.device, service: r.service, reason: 'not-permitted' },
        `resetting stream of ${r.user} to ${r.device}:${r.service}: no longer permitted`,
      );
      r.relay.reset('not-permitted');
    }
    for (const entry of [...this.#devices.values()]) {
      const peer = peers.lookup(entry.handle.peerKey);
      // A removed key's session was closed by the server already (its onClose dropped the entry).
      if (peer === undefined) continue;
      if (peer.kind !== 'device' || peer.name !== entry.name) {
        // Renamed, or no longer a device: users' permissions named the old device. The agent
        // reconnects (with backoff) and registers as what the new allowlist says it is.
        const why = peer.kind !== 'device' ? 'no longer a device' : `renamed to ${peer.name}`;
        reset += this.#relaysOf(entry.name);
        this.#drop(entry, why);
        this.#log.warn({ event: EVENTS.deviceOffline, device: entry.name, detail: why }, `device ${entry.name}: ${why}; closing its session`);
        entry.handle.mux.close('normal', `peer changed: ${why}`);
        entry.handle.session.close({ code: 'normal', message: 'peer changed' });
        continue;
      }
      entry.reverse.sync(peer.reverse, entry.services);
    }
    return { streamsReset: reset, opensRefused };
  }

  #relaysOf(device: string): number {
    return [...this.#relays].filter((r) => r.device === device).length;
  }

  status(): DeviceStatus[] {
    return [...this.#devices.values()].map((d) => ({
      name: d.name,
      fingerprint: d.handle.fingerprint,
      services: [...d.services],
      since: d.since.toISOString(),
      streams: this.#relaysOf(d.name),
      reverse: d.reverse.status(),
    }));
  }

  /** Shutdown has begun: reverse listeners take no more connections (open ones drain). */
  stopAccepting(): void {
    for (const d of this.#devices.values()) d.reverse.stopAccepting();
  }

  /** Shutdown: every relay reset, every reverse port released. */
  closeAll(): void {
    for (const d of this.#devices.values()) d.opens.close();
    for (const r of [...this.#relays]) r.relay.reset('tunnel-closed');
    for (const d of this.#devices.values()) d.reverse.closeAll('server shutting down');
  }
}
