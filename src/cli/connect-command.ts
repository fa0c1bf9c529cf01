import fs from 'node:fs';
import type net from 'node:net';
import { controlConnect } from '../daemon/control-client.js';
import { ControlStream } from '../daemon/control-stream.js';
import { ClientDaemon } from '../daemon/client.js';
import { MuxStreamError, isReasonCode } from '../mux/reason.js';
import { connectStdio } from '../forward/stdio.js';
import { createLogger, type LogLevel } from '../log/logger.js';
import { CliError } from './fail.js';
import { loadClientOptions } from './load-client.js';
import { loadClientConfig } from '../config/client-config.js';

/**
 * `twoway connect HOST:PORT`: stdin/stdout become one stream to the target (ssh ProxyCommand).
 * Through the running client daemon's control socket when there is one, else over a session of
 * its own. Logs go to stderr so that stdout carries only the stream.
 */
export async function connectCommand(target: string, options: { config: string; logLevel: LogLevel }): Promise<number> {
  const config = loadClientConfig(options.config, { env: process.env });
  if (config.controlSocket !== undefined && isSocket(config.controlSocket)) {
    const viaDaemon = await connectViaDaemon(config.controlSocket, target).catch(() => undefined);
    if (viaDaemon !== undefined) return viaDaemon;
  }
  const logger = createLogger({ level: options.logLevel === 'info' ? 'warn' : options.logLevel, destination: process.stderr, base: { role: 'connect' } });
  const { options: daemonOptions } = loadClientOptions(options.config, process.env, logger, { noConfigForwards: true });
  const daemon = new ClientDaemon({ ...daemonOptions, once: true });
  await daemon.start();
  try {
    await daemon.firstSession;
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  try {
    return await connectStdio(target, (t) => daemon.openStream(t), { stdin: process.stdin, stdout: process.stdout });
  } finally {
    await daemon.stop();
  }
}

function isSocket(path: string): boolean {
  try {
    return fs.statSync(path).isSocket();
  } catch {
    return false;
  }
}

/** Resolves with the exit status, or undefined when no daemon answers (fall back to our own). */
async function connectViaDaemon(socketPath: string, target: string): Promise<number | undefined> {
  const socket = await controlConnect(socketPath, { cmd: 'connect', target });
  const answer = await readLine(socket);
  if (answer === undefined) return undefined;
  const reply = JSON.parse(answer) as { ok: boolean; error?: string; reason?: string };
  if (!reply.ok) {
    const reason = isReasonCode(reply.reason) ? reply.reason : 'error';
    throw new MuxStreamError('ERR_MUX_STREAM_REFUSED', reply.error ?? `stream to ${target} refused`, reason);
  }
  // The same stdio pipe as without a daemon: a reset or a truncation rejects with its error.
  return connectStdio(target, () => new ControlStream(socket), { stdin: process.stdin, stdout: process.stdout });
}

function readLine(socket: net.Socket): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(0x0a);
      if (nl < 0) {
        if (buffered.length > 64 * 1024) reject(new CliError('control socket: answer too long'));
        return;
      }
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      const rest = buffered.subarray(nl + 1);
      if (rest.length > 0) socket.unshift(rest);
      resolve(buffered.subarray(0, nl).toString('utf8'));
    };
    const onEnd = (): void => resolve(undefined);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', () => resolve(undefined));
  });
}
