import net from 'node:net';
import { ConfigError } from '../errors.js';
import type { ControlReply, ControlRequest } from './control-server.js';

const CONTROL_TIMEOUT_MS = 10_000;

/** Sends one request to a daemon's control socket and returns its reply. */
export function controlRequest(path: string, request: ControlRequest, timeoutMs = CONTROL_TIMEOUT_MS): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConfigError('ERR_CONTROL', `control socket ${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        err.code === 'ENOENT'
          ? 'no such socket (is the daemon running?)'
          : err.code === 'EACCES'
            ? 'permission denied'
            : err.code === 'ECONNREFUSED'
              ? 'nothing is listening (is the daemon running?)'
              : err.message;
      reject(new ConfigError('ERR_CONTROL', `control socket ${path}: ${why}`));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ControlReply);
      } catch {
        reject(new ConfigError('ERR_CONTROL', `control socket ${path}: malformed reply`));
      }
    });
  });
}

/** Opens a control connection and sends one request, leaving the socket for the caller (raw pipes). */
export function controlConnect(path: string, request: ControlRequest): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    socket.once('error', (err: NodeJS.ErrnoException) => reject(new ConfigError('ERR_CONTROL', `control socket ${path}: ${err.code ?? err.message}`)));
    socket.once('connect', () => {
      socket.write(`${JSON.stringify(request)}\n`);
      resolve(socket);
    });
  });
}
