/**
 * Where a stream request inside a server session goes: a device's announcement to the device
 * router, a device target (`DEVICE:SERVICE`, `SERVICE.DEVICE.twoway:PORT`) to the router's relay,
 * anything else to the server's own dial (target-streams.ts). The server daemon calls this for
 * every open; the device unit tests call the same function (test/helpers/device-harness.ts).
 */
import type { Logger } from 'pino';
import { ANNOUNCE_TARGET, parseDeviceTarget, type DeviceTarget } from '../device/target.js';
import type { DeviceRouter, DeviceSessionHandle } from '../device/router.js';
import type { AuditSink } from '../log/audit.js';
import { EVENTS } from '../log/events.js';
import type { StreamRequest } from '../mux/stream-request.js';
import type { ServerPeer, ServerPeers } from '../policy/peer-table.js';

/** A session as the dispatch sees it: the router's handle and the logger with the peer's name. */
export interface DispatchHandle extends DeviceSessionHandle {
  readonly log: Logger;
}

export interface Dispatch<H extends DispatchHandle> {
  /** The allowlist in force now. */
  readonly peers: () => ServerPeers;
  readonly devices: DeviceRouter;
  /** True once the server stops: every open is refused. */
  readonly draining: () => boolean;
  /** `max_streams_per_key`, and the streams the key holds across its sessions (this open included). */
  readonly maxStreamsPerKey?: number;
  readonly streamsOfKey: (fingerprint: string) => number;
  /** A plain `host:port` target: the server's own dial. */
  readonly serveTarget: (handle: H, request: StreamRequest) => void;
  readonly audit: AuditSink;
}

/** Routes one stream request of `handle`'s session. */
export function dispatchStreamRequest<H extends DispatchHandle>(d: Dispatch<H>, handle: H, request: StreamRequest): void {
  const peers = d.peers();
  const peer: ServerPeer | undefined = peers.lookup(handle.peerKey);
  if (d.draining()) {
    request.reject('limit', 'server is shutting down');
    return;
  }
  const log = handle.log;
  if (peer !== undefined && request.target === ANNOUNCE_TARGET) {
    d.devices.announce(handle, peer, request);
    return;
  }
  const maxPerKey = d.maxStreamsPerKey;
  if (maxPerKey !== undefined && d.streamsOfKey(handle.fingerprint) > maxPerKey) {
    const message = `too many streams for this key (max_streams_per_key = ${maxPerKey})`;
    d.audit({ type: 'stream-refused', via: 'target', reason: 'limit' });
    log.warn({ event: EVENTS.streamRefused, target: request.target, reason: 'limit', detail: message }, `stream refused: ${message}`);
    request.reject('limit', message);
    return;
  }
  let device: DeviceTarget | undefined;
  try {
    device = parseDeviceTarget(request.target);
  } catch (err) {
    d.audit({ type: 'stream-refused', via: 'target', reason: 'not-permitted' });
    log.warn(
      { event: EVENTS.streamRefused, target: request.target, reason: 'not-permitted', detail: (err as Error).message },
      `stream refused: ${(err as Error).message}`,
    );
    request.reject('not-permitted', (err as Error).message);
    return;
  }
  if (device !== undefined) {
    if (peer === undefined) request.reject('not-permitted', 'peer is no longer on the allowlist');
    else d.devices.route(handle, peer, peers, device, request, log);
    return;
  }
  d.serveTarget(handle, request);
}
