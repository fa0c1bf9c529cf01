import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from 'pino';

/**
 * The local control socket: a unix socket of mode 0600 that speaks one JSON request per line and
 * answers one JSON line. `twoway status`, `peers add|remove` (reload) and `connect` use it.
 * A handler may instead take over the socket (`connect` turns it into a raw stream pipe).
 */
export type ControlRequest = { readonly cmd: string; readonly [key: string]: unknown };
export type ControlReply = { readonly ok: boolean; readonly [key: string]: unknown };
export type ControlHandler = (
  request: ControlRequest,
  socket: net.Socket,
) => Promise<ControlReply | 'taken'>;

const MAX_REQUEST_BYTES = 64 * 1024;
const REQUEST_TIMEOUT_MS = 5_000;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

export async function startControlServer(
  path: string,
  handler: ControlHandler,
  logger: Logger,
): Promise<ControlServer> {
  // A stale socket from a crashed run is removed; anything else at that path is left alone.
  try {
    const st = fs.lstatSync(path);
    if (!st.isSocket()) throw new Error(`${path} exists and is not a socket`);
    if (await isListening(path)) throw new Error(`${path} is in use by a running daemon`);
    fs.unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const server = net.createServer((socket) => serve(socket, handler, logger));
  server.on('error', (err) => logger.error({ event: 'control.error', err: err.message }, 'control socket error'));
  const oldUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldUmask);
  }
  fs.chmodSync(path, 0o600);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        try {
          fs.unlinkSync(path);
        } catch {
          // already gone
        }
      }),
  };
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

function serve(socket: net.Socket, handler: ControlHandler, logger: Logger): void {
  socket.on('error', () => {});
  let buffered = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), REQUEST_TIMEOUT_MS).unref();
  const onData = (chunk: Buffer): void => {
    buffered = Buffer.concat([buffered, chunk]);
    const newline = buffered.indexOf(0x0a);
    if (newline < 0) {
      if (buffered.length > MAX_REQUEST_BYTES) socket.destroy();
      return;
    }
    socket.off('data', onData);
    socket.pause();
    clearTimeout(timer);
    const line = buffered.subarray(0, newline).toString('utf8');
    const rest = buffered.subarray(newline + 1);
    let request: ControlRequest;
    try {
      request = JSON.parse(line) as ControlRequest;
      if (typeof request !== 'object' || request === null || typeof request.cmd !== 'string') throw new Error('no cmd');
    } catch {
      socket.end(`${JSON.stringify({ ok: false, error: 'malformed request' })}\n`);
      return;
    }
    if (rest.length > 0) socket.unshift(rest);
    handler(request, socket).then(
      (reply) => {
        if (reply !== 'taken') socket.end(`${JSON.stringify(reply)}\n`);
      },
      (err: unknown) => {
        logger.warn({ event: 'control.failed', cmd: request.cmd, err: (err as Error).message }, 'control request failed');
        socket.end(`${JSON.stringify({ ok: false, error: (err as Error).message })}\n`);
      },
    );
  };
  socket.on('data', onData);
}
