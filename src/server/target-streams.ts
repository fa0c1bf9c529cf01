/**
 * One stream open on the server: check the peer's permissions, wait for a dial slot (one
 * DialLimiter per session), dial the resolved address, and only then accept (so the user's
 * application sees a clean refusal, never a connection that accepts and dies). Every outcome is
 * an audit line.
 *
 * The peer's rules are read again at every step, never captured when the open arrived (issue 13,
 * item 2): when the open arrives, when its dial slot is taken, and just before it is accepted
 * (after the dial connected). A reload re-checks the opens still pending (`recheckPendingOpens`)
 * and refuses those no longer permitted, cancelling their wait or their dial.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import type { DialLimiter } from '../forward/dial-limiter.js';
import { dialTarget, type Dialed } from '../forward/dial-target.js';
import { serveStream } from '../forward/serve-stream.js';
import type { AuditSink } from '../log/audit.js';
import { EVENTS } from '../log/events.js';
import type { ReasonCode } from '../mux/reason.js';
import type { StreamRequest } from '../mux/stream-request.js';
import type { MuxStream } from '../mux/stream.js';
import { mayBePermitted } from '../policy/authorize.js';
import type { ServerPeer } from '../policy/peer-table.js';

/** A stream that is open and piped to its target socket. */
export interface ActiveStream {
  readonly stream: MuxStream;
  readonly socket: net.Socket;
  readonly target: string;
  readonly host: string;
  readonly address: string;
  readonly port: number;
}

/** An open between its arrival and its accept or refusal: queued for a slot or dialing. */
export interface PendingOpen {
  readonly target: string;
  /** Refuses the open with 'not-permitted' and cancels its wait or dial (a reload revoked it). */
  revoke(message: string): void;
}

export interface StreamOwner {
  readonly streams: Set<ActiveStream>;
  /** The session's one dial limiter: dials in flight and the opens waiting for a slot. */
  readonly dials: DialLimiter;
  readonly pending: Set<PendingOpen>;
}

export interface ServeStreamOptions {
  readonly handle: StreamOwner;
  /** The peer as the allowlist in force says now (undefined once its key is gone). */
  readonly currentPeer: () => ServerPeer | undefined;
  readonly request: StreamRequest;
  /** From the open's arrival to its answer, queueing included. */
  readonly dialTimeoutMs: number;
  /** The server's own addresses at the time of the call (src/policy/own-addresses.ts). */
  readonly ownAddresses: () => readonly string[];
  readonly logger: Logger;
  /** Counts the open's outcome and bytes (metrics), whatever the log level. */
  readonly audit?: AuditSink;
}

const NO_LONGER_LISTED = 'peer is no longer on the allowlist';
/**
 * The reason an open's own AbortController is aborted with once it is settled: one shared value,
 * because `abort()` without one builds a DOMException (and its stack) for every stream, and no
 * listener reads it (dialTarget and the dial queue only ask whether the signal aborted).
 */
const SETTLED = Object.freeze(new Error('open settled'));

export function serveStreamRequest(o: ServeStreamOptions): void {
  const { request, handle, logger: log } = o;
  const shown = String(request.target).slice(0, 300);
  const notPermitted = `${shown}: not permitted for this peer`;
  const abort = new AbortController();
  let settled = false;
  const refuse = (reason: ReasonCode, message: string): void => {
    if (settled) return;
    settled = true;
    finish();
    o.audit?.({ type: 'stream-refused', via: 'target', reason });
    log.warn({ event: EVENTS.streamRefused, target: request.target, reason, detail: message }, `stream to ${request.target} refused: ${message}`);
    request.reject(reason, message);
  };
  const pending: PendingOpen = { target: request.target, revoke: (message) => refuse('not-permitted', message) };
  const onCancel = (): void => {
    settled = true;
    finish();
  };
  const timer = setTimeout(() => refuse('timeout', `${shown}: no answer within ${o.dialTimeoutMs} ms`), o.dialTimeoutMs);
  timer.unref();
  function finish(): void {
    clearTimeout(timer);
    handle.pending.delete(pending);
    request.signal.removeEventListener('abort', onCancel);
    abort.abort(SETTLED);
  }

  // 1. On arrival: a denied open costs no slot.
  const peer = o.currentPeer();
  if (peer === undefined) return refuse('not-permitted', NO_LONGER_LISTED);
  if (!mayBePermitted(request.target, peer.rules, o.ownAddresses())) return refuse('not-permitted', notPermitted);
  if (request.cancelled) return onCancel();
  handle.pending.add(pending);
  request.signal.addEventListener('abort', onCancel, { once: true });

  const started = Date.now();
  const deadline = started + o.dialTimeoutMs;
  const dialing = handle.dials.run(async (): Promise<Dialed | undefined> => {
    // 2. The slot is taken: the rules in force now decide, and the dial connects only to an
    // address they grant.
    if (settled) return undefined;
    const now = o.currentPeer();
    if (now === undefined) {
      refuse('not-permitted', NO_LONGER_LISTED);
      return undefined;
    }
    return dialTarget(request.target, {
      rules: now.rules,
      timeoutMs: Math.max(1, deadline - Date.now()),
      signal: abort.signal,
      localAddresses: o.ownAddresses(),
    });
  }, abort.signal);
  serveStream({
    dialing,
    settled: () => settled,
    // 3. Connected: a reload may have run while the dial did. No byte has moved yet.
    recheck: (dialed) => {
      const now = o.currentPeer();
      if (now === undefined) return NO_LONGER_LISTED;
      return now.rules.allowsResolved(dialed.host, dialed.address, dialed.port, o.ownAddresses()) ? undefined : notPermitted;
    },
    accept: () => {
      settled = true;
      finish();
      return request.accept();
    },
    refuse,
    onOpen: (stream, dialed) => {
      const active: ActiveStream = { stream, socket: dialed.socket, target: request.target, host: dialed.host, address: dialed.address, port: dialed.port };
      handle.streams.add(active);
      o.audit?.({ type: 'stream-opened', via: 'target' });
      log.info(
        { event: EVENTS.streamOpen, stream: stream.id, target: request.target, address: dialed.address, port: dialed.port, dialMs: Date.now() - started },
        `stream ${stream.id} open to ${request.target}`,
      );
      return (result) => {
        handle.streams.delete(active);
        o.audit?.({ type: 'stream-closed', via: 'target', bytesToTarget: result.bytesToSocket, bytesFromTarget: result.bytesFromSocket });
        log.info(
          {
            event: EVENTS.streamClose,
            stream: stream.id,
            target: request.target,
            bytesToTarget: result.bytesToSocket,
            bytesFromTarget: result.bytesFromSocket,
            durationMs: result.durationMs,
            how: result.how,
          },
          `stream ${stream.id} to ${request.target} closed (${result.how})`,
        );
      };
    },
  });
}

/**
 * A reload: refuses the session's pending opens that `peer` (the new allowlist's entry) may no
 * longer reach, so no queued or in-flight dial carries a revoked grant. Returns how many.
 */
export function recheckPendingOpens(handle: StreamOwner, peer: ServerPeer, ownAddresses: readonly string[]): number {
  let revoked = 0;
  for (const p of [...handle.pending]) {
    if (mayBePermitted(p.target, peer.rules, ownAddresses)) continue;
    revoked++;
    p.revoke(`${String(p.target).slice(0, 300)}: no longer permitted for this peer`);
  }
  return revoked;
}
