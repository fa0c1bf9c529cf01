import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from 'pino';
import { EVENTS } from '../log/events.js';
import { MAX_LINE_BYTES, readLine } from './json-line.js';

/**
 * The local control socket: a unix socket of mode 0600 that speaks one JSON request per line and
 * answers one JSON line. `twoway status`, `peers add|remove` (reload) and `connect` use it.
 * A handler may instead take over the socket (`connect` turns it into a raw stream pipe).
 */
export type ControlRequest = { readonly cmd: string; readonly [key: string]: unknown };
export type ControlReply = { readonly ok: boolean; readonly [key: string]: unknown };
export type ControlHandler = (request: ControlRequest, socket: net.Socket) => Promise<ControlReply | 'taken'>;

const MAX_REQUEST_BYTES = MAX_LINE_BYTES;
const REQUEST_TIMEOUT_MS = 5_000;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/** Who may use the socket besides its owner: `mode` 0o600 or 0o660, and the group for 0o660. */
export interface ControlSocketPermissions {
  readonly mode: number;
  readonly gid?: number;
}

export async function startControlServer(
  path: string,
  handler: ControlHandler,
  logger: Logger,
  permissions: ControlSocketPermissions = { mode: 0o600 },
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
  server.on('error', (err) => logger.error({ event: EVENTS.controlError, err: err.message }, 'control socket error'));
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
  const close = (): Promise<void> =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      try {
        fs.unlinkSync(path);
      } catch {
        // already gone
      }
    });
  // Bound under umask 0177 (mode 0600), so until here only this user could connect; the group
  // gets access only once the socket carries the right group.
  try {
    // Under the unit's Group= the socket has that group already: no chown (the unit's system
    // call filter leaves out @privileged, which holds the chown calls).
    if (permissions.gid !== undefined && fs.statSync(path).gid !== permissions.gid) fs.chownSync(path, -1, permissions.gid);
    fs.chmodSync(path, permissions.mode);
  } catch (err) {
    await close();
    const e = err as NodeJS.ErrnoException;
    throw new Error(
      `${permissions.gid !== undefined ? `setting group ${permissions.gid} and ` : ''}mode ${permissions.mode.toString(8).padStart(4, '0')}: ${e.code === 'EPERM' ? 'operation not permitted (the daemon must be a member of that group)' : e.message}`,
      { cause: err },
    );
  }
  return { path, close };
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
  const timer = setTimeout(() => socket.destroy(), REQUEST_TIMEOUT_MS).unref();
  readLine(socket, MAX_REQUEST_BYTES).then(
    (line) => {
      clearTimeout(timer);
      if (line === undefined) return;
      let request: ControlRequest;
      try {
        request = JSON.parse(line) as ControlRequest;
        if (typeof request !== 'object' || request === null || typeof request.cmd !== 'string') throw new Error('no cmd');
      } catch {
        socket.end(`${JSON.stringify({ ok: false, error: 'malformed request' })}\n`);
        return;
      }
      handler(request, socket).then(
        (reply) => {
          if (reply !== 'taken') socket.end(`${JSON.stringify(reply)}\n`);
        },
        (err: unknown) => {
          logger.warn({ event: EVENTS.controlFailed, cmd: request.cmd, err: (err as Error).message }, 'control request failed');
          socket.end(`${JSON.stringify({ ok: false, error: (err as Error).message })}\n`);
        },
      );
    },
    () => {
      clearTimeout(timer);
      socket.destroy();
    },
  );
}
