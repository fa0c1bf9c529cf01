/**
 * Test stand-ins for the multiplexer: an in-memory stream pair with the mux's contract (writes
 * before 'open' buffered, half-close carried, destroy = reset of the other end), and an opener
 * that plays the server: it dials the target with dialTarget and pipes the far end to the socket.
 */
import net from 'node:net';
import { Duplex, type Readable } from 'node:stream';
import { MuxError, type MuxErrorCode } from '../../src/errors.js';
import type { ReasonCode } from '../../src/mux/reason.js';
import { dialTarget, type DialError } from '../../src/forward/dial-target.js';
import type { StreamOpener } from '../../src/forward/local-forward.js';
import { pipeSocketStream } from '../../src/forward/pipe.js';
import { compileRules, type AccessRules } from '../../src/policy/access-rules.js';

/** A stream error as the mux raises it: a code and a reason. */
export function streamError(code: MuxErrorCode, reason: ReasonCode, message = `${code} ${reason}`): MuxError & { reason: ReasonCode } {
  return Object.assign(new MuxError(code, message), { reason });
}

class PairEnd extends Duplex {
  peer!: PairEnd;
  #waiting: (() => void) | undefined;

  constructor() {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.peer.destroyed) {
      cb(streamError('ERR_MUX_STREAM_RESET', 'cancel'));
      return;
    }
    if (this.peer.push(chunk)) cb();
    else this.peer.#waiting = cb;
  }

  override _read(): void {
    const cb = this.#waiting;
    this.#waiting = undefined;
    cb?.();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    const clean = this.readableEnded && this.writableFinished;
    if (!this.peer.destroyed && !clean) this.peer.destroy(streamError('ERR_MUX_STREAM_RESET', err ? 'error' : 'cancel'));
    const w = this.peer.#waiting;
    this.peer.#waiting = undefined;
    w?.();
    cb(err);
  }
}

/** Two connected ends: what one writes the other reads; destroying one resets the other. */
export function streamPair(): [Duplex, Duplex] {
  const a = new PairEnd();
  const b = new PairEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

export interface FakeOpener {
  readonly open: StreamOpener;
  /** Targets asked for, in order. */
  readonly targets: string[];
  /** Far ends, for tests that reset them. */
  readonly farEnds: Duplex[];
}

/**
 * An opener that dials like the server would (dialTarget with `rules`), emits 'open' on the near
 * end once connected, and errors it with ERR_MUX_STREAM_REFUSED and the dial's reason otherwise.
 */
export function fakeOpener(rules: AccessRules | string[] = ['127.0.0.0/8:*']): FakeOpener {
  const compiled = Array.isArray(rules) ? compileRules(rules) : rules;
  const targets: string[] = [];
  const farEnds: Duplex[] = [];
  const open: StreamOpener = (target) => {
    targets.push(target);
    const [near, far] = streamPair();
    // The far end plays the server's stream: its failures are seen through the near end.
    far.on('error', () => {});
    farEnds.push(far);
    dialTarget(target, { rules: compiled, timeoutMs: 5_000 }).then(
      ({ socket }) => {
        if (!near.destroyed) near.emit('open');
        pipeSocketStream(socket, far);
      },
      (err: DialError) => {
        near.destroy(streamError('ERR_MUX_STREAM_REFUSED', err.reason, err.message));
      },
    );
    return near;
  };
  return { open, targets, farEnds };
}

/** A loopback TCP server; resolves with it and its port. */
export async function tcpServer(onSocket: (s: net.Socket) => void): Promise<{ server: net.Server; port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Connects to 127.0.0.1:port with allowHalfOpen. */
export function connectLoopback(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Collects everything a readable gives until 'end'; rejects on error or close without end. */
export function readAll(r: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    r.on('data', (c: Buffer) => chunks.push(c));
    r.once('end', () => resolve(Buffer.concat(chunks)));
    r.once('error', reject);
    r.once('close', () => reject(new Error('closed without end')));
  });
}

/** Connects to 127.0.0.1:port and reports how the connection ended: 'end' or an error code. */
export function connectAndWatch(port: number): { client: net.Socket; outcome: Promise<string> } {
  const client = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const outcome = new Promise<string>((resolve) => {
    client.once('end', () => resolve('end'));
    client.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  return { client, outcome };
}
