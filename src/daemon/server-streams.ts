/**
 * One stream open on the server: check the peer's permissions, dial the resolved address, and
 * only then accept (so the user's application sees a clean refusal, never a connection that
 * accepts and dies). Every outcome is an audit line.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { dialTarget } from '../forward/dial.js';
import { pipeSocketStream } from '../forward/pipe.js';
import { EVENTS } from '../log/events.js';
import { isReasonCode, type ReasonCode } from '../mux/reason.js';
import type { StreamRequest } from '../mux/stream-request.js';
import type { MuxStream } from '../mux/stream.js';
import type { ServerPeer } from './server-peers.js';

/** A stream that is open and piped to its target socket. */
export interface ActiveStream {
  readonly stream: MuxStream;
  readonly socket: net.Socket;
  readonly target: string;
  readonly host: string;
  readonly address: string;
  readonly port: number;
}

interface StreamOwner {
  readonly streams: Set<ActiveStream>;
  dialsInFlight: number;
  /** Opens waiting for a dial slot (bounded by the mux's cap on pending opens). */
  readonly dialQueue: Array<() => void>;
}

export interface ServeStreamOptions {
  readonly handle: StreamOwner;
  readonly peer: ServerPeer | undefined;
  readonly request: StreamRequest;
  readonly dialsInFlight: number;
  readonly dialTimeoutMs: number;
  readonly localAddresses: readonly string[];
  readonly logger: Logger;
}

function reasonOf(err: unknown): ReasonCode {
  const reason = (err as { reason?: unknown }).reason;
  return isReasonCode(reason) ? reason : 'error';
}

export function serveStreamRequest(o: ServeStreamOptions): void {
  const { request, handle, logger: log } = o;
  const refuse = (reason: ReasonCode, message: string): void => {
    log.warn({ event: EVENTS.streamRefused, target: request.target, reason, detail: message }, `stream to ${request.target} refused: ${message}`);
    request.reject(reason, message);
  };
  if (o.peer === undefined) {
    refuse('not-permitted', 'peer is no longer on the allowlist');
    return;
  }
  if (handle.dialsInFlight >= o.dialsInFlight) {
    handle.dialQueue.push(() => serveStreamRequest(o));
    return;
  }
  if (request.cancelled) return;
  handle.dialsInFlight++;
  const next = (): void => {
    handle.dialsInFlight--;
    handle.dialQueue.shift()?.();
  };
  const started = Date.now();
  dialTarget(request.target, {
    rules: o.peer.rules,
    timeoutMs: o.dialTimeoutMs,
    signal: request.signal,
    localAddresses: o.localAddresses,
  }).then(
    (dialed) => {
      next();
      if (request.cancelled) {
        dialed.socket.destroy();
        return;
      }
      let stream: MuxStream;
      try {
        stream = request.accept();
      } catch {
        dialed.socket.destroy();
        return;
      }
      const active: ActiveStream = { stream, socket: dialed.socket, target: request.target, host: dialed.host, address: dialed.address, port: dialed.port };
      handle.streams.add(active);
      log.info(
        { event: EVENTS.streamOpen, stream: stream.id, target: request.target, address: dialed.address, port: dialed.port, dialMs: Date.now() - started },
        `stream ${stream.id} open to ${request.target}`,
      );
      pipeSocketStream(dialed.socket, stream, {
        onDone: (result) => {
          handle.streams.delete(active);
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
        },
      });
    },
    (err: unknown) => {
      next();
      if (request.cancelled) return;
      refuse(reasonOf(err), (err as Error).message);
    },
  );
}
