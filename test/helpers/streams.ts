/** Shared helpers for the mux tests: session pairs, scripted peers, hashing. */
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { createChannelPair, type CloseReason, type MessageChannel } from '../../src/channel.js';
import { FrameDecoder } from '../../src/mux/frame-decoder.js';
import type { Frame } from '../../src/mux/frame.js';
import type { MuxLimits } from '../../src/mux/mux-limits.js';
import { MuxSession } from '../../src/mux/session.js';
import type { StreamRequest } from '../../src/mux/stream-request.js';

export function sha256(data: Uint8Array | readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  if (data instanceof Uint8Array) hash.update(data);
  else for (const part of data) hash.update(part);
  return hash.digest('hex');
}

/** Reads a stream to its end; resolves with the bytes' sha256 and length. */
export function drain(stream: Duplex): Promise<{ hash: string; length: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let length = 0;
    stream.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
    });
    stream.once('end', () => resolve({ hash: hash.digest('hex'), length }));
    stream.once('error', reject);
  });
}

/** Writes `total` pseudo-random bytes in `chunkBytes` writes honouring backpressure, then ends. */
export async function pump(stream: Duplex, total: number, chunkBytes = 64 * 1024): Promise<string> {
  const block = randomBytes(Math.min(total, 1024 * 1024));
  const hash = createHash('sha256');
  let sent = 0;
  while (sent < total) {
    const n = Math.min(chunkBytes, total - sent);
    const offset = sent % block.length;
    const chunk = offset + n <= block.length ? block.subarray(offset, offset + n) : randomBytes(n);
    hash.update(chunk);
    sent += n;
    if (!stream.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        stream.once('error', onError);
        stream.once('drain', () => {
          stream.off('error', onError);
          resolve();
        });
      });
    }
  }
  stream.end();
  return hash.digest('hex');
}

/** Tests close sessions with live streams: give every stream a listener so that is not a crash. */
export function quiet<T extends Duplex>(stream: T): T {
  stream.on('error', () => {});
  return stream;
}

function quietSession(session: MuxSession): MuxSession {
  const open = session.openStream.bind(session);
  session.openStream = (target: string) => quiet(open(target));
  return session;
}

function quietRequest(request: StreamRequest): StreamRequest {
  return {
    get id() {
      return request.id;
    },
    get target() {
      return request.target;
    },
    get cancelled() {
      return request.cancelled;
    },
    get signal() {
      return request.signal;
    },
    accept: () => quiet(request.accept()),
    reject: (reason, message) => request.reject(reason, message),
  };
}

export interface SessionPair {
  client: MuxSession;
  server: MuxSession;
  channels: [MessageChannel, MessageChannel];
  requests: StreamRequest[];
}

/** A client and a server session; by default the server accepts every stream at once. */
export function sessionPair(
  options: {
    channels?: [MessageChannel, MessageChannel];
    limits?: Partial<MuxLimits>;
    onStreamRequest?: (request: StreamRequest) => void;
  } = {},
): SessionPair {
  const channels = options.channels ?? createChannelPair();
  const requests: StreamRequest[] = [];
  const client = quietSession(new MuxSession(channels[0], { role: 'client', ...(options.limits ? { limits: options.limits } : {}) }));
  const handler = options.onStreamRequest ?? ((request: StreamRequest) => requests.push(request));
  const server = quietSession(
    new MuxSession(channels[1], {
      role: 'server',
      ...(options.limits ? { limits: options.limits } : {}),
      onStreamRequest: (request) => handler(quietRequest(request)),
    }),
  );
  return { client, server, channels, requests };
}

/** A raw peer speaking frames by hand, for scripted misbehaviour. */
export class ScriptedPeer {
  readonly frames: Frame[] = [];
  readonly decoder = new FrameDecoder();
  closedWith: CloseReason | undefined;
  constructor(readonly channel: MessageChannel) {
    channel.onMessage((message) => this.frames.push(...this.decoder.push(message)));
    channel.onClose((reason) => (this.closedWith = reason));
  }
  send(...frames: Uint8Array[]): boolean {
    return this.channel.send(frames);
  }
  of<T extends Frame['type']>(type: T): Array<Extract<Frame, { type: T }>> {
    return this.frames.filter((f): f is Extract<Frame, { type: T }> => f.type === type);
  }
}
