/** Shared helpers for the mux tests: session pairs, scripted peers, hashing. */
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
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
  const client = quietSession(
    new MuxSession(channels[0], { role: 'client', ...(options.limits ? { limits: options.limits } : {}) }),
  );
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

/** A MessageChannel over a `ws` WebSocket (test-only adapter; src/transport/ has the real one). */
class WsChannel implements MessageChannel {
  #onMessage: (message: Uint8Array) => void = () => {};
  #onDrain: () => void = () => {};
  #onClose: (reason: CloseReason) => void = () => {};
  #closed = false;
  #above = false;
  #closedLocally = false;
  constructor(private readonly ws: WebSocket, private readonly highWater = 1024 * 1024) {
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer) => this.#onMessage(new Uint8Array(data.buffer, data.byteOffset, data.length)));
    ws.on('error', () => {});
    ws.on('close', () => {
      if (this.#closed && this.#closedLocally) return;
      this.#closed = true;
      this.#onClose({ code: 'transport-closed', remote: true });
    });
  }
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }
  get closed(): boolean {
    return this.#closed;
  }
  send(message: Uint8Array | readonly Uint8Array[]): boolean {
    if (this.#closed) return false;
    const data = message instanceof Uint8Array ? message : Buffer.concat(message as Uint8Array[]);
    this.ws.send(data, { binary: true }, () => this.#checkDrain());
    const ok = this.ws.bufferedAmount <= this.highWater;
    if (!ok) this.#above = true;
    return ok;
  }
  #checkDrain(): void {
    if (this.#above && this.ws.bufferedAmount <= this.highWater && !this.#closed) {
      this.#above = false;
      this.#onDrain();
    }
  }
  onMessage(handler: (message: Uint8Array) => void): void {
    this.#onMessage = handler;
  }
  onDrain(handler: () => void): void {
    this.#onDrain = handler;
  }
  onClose(handler: (reason: CloseReason) => void): void {
    this.#onClose = handler;
  }
  close(reason: CloseReason = { code: 'normal' }): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closedLocally = true;
    this.ws.close(1000);
    queueMicrotask(() => this.#onClose({ ...reason, remote: false }));
  }
}

/** Two MessageChannels over a real loopback WebSocket; `stop()` closes everything. */
export async function wsChannelPair(): Promise<{ channels: [MessageChannel, MessageChannel]; stop: () => Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 65_535 });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, maxPayload: 65_535 });
  await new Promise<void>((resolve, reject) => {
    client.once('open', resolve);
    client.once('error', reject);
  });
  const serverSide = await accepted;
  return {
    channels: [new WsChannel(client), new WsChannel(serverSide)],
    stop: async () => {
      client.terminate();
      serverSide.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
