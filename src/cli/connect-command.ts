import net from 'node:net';
import os from 'node:os';
import { Writable, type Duplex } from 'node:stream';
import { ControlStream } from '../control/control-stream.js';
import { controlSocketTrust } from '../control/control-trust.js';
import { ClientDaemon } from '../client/client-daemon.js';
import { ConfigError } from '../errors.js';
import { MuxStreamError, toReasonCode, type ReasonCode } from '../mux/reason.js';
import { connectStdio } from '../forward/stdio.js';
import { createLogger, type LogLevel } from '../log/logger.js';
import { EXIT } from './exit-codes.js';
import { CliError } from './fail.js';
import { loadClientOptions } from './load-client.js';
import { defaultClientConfigFile, loadClientConfig } from '../config/client-config.js';

/** After stdin's end and SIGHUP (ssh ending its ProxyCommand), how long the far end may take to end. */
export const HANGUP_GRACE_MS = 2_000;

/**
 * The client config `twoway connect` (and `reconnect`) use: `-c FILE`, else the default of
 * `client` and `status` ($TWOWAY_CONFIG, else $XDG_CONFIG_HOME/twoway/client.toml).
 */
export function findClientConfig(explicit: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  return explicit ?? defaultClientConfigFile(env, os.homedir());
}

/**
 * `twoway connect HOST:PORT`: stdin/stdout become one stream to the target (ssh ProxyCommand).
 * Through the running client daemon's control socket when one answers, else over a session of
 * its own; once a daemon has answered, its refusal or reset is final (issue 12 item 6). Logs go
 * to stderr so that stdout carries only the stream.
 */
export async function connectCommand(target: string, options: { config?: string; socket?: string; logLevel: LogLevel }): Promise<number> {
  const configFile = findClientConfig(options.config, process.env);
  const socketPath = options.socket ?? loadClientConfig(configFile, { env: process.env }).controlSocket;
  if (socketPath !== undefined) {
    const viaDaemon = await connectViaDaemon(socketPath, target);
    if (viaDaemon !== undefined) return viaDaemon;
    // An explicit socket names the daemon to use; a session of our own needs a config.
    if (options.socket !== undefined && options.config === undefined) {
      throw new CliError(`control socket ${socketPath}: no daemon is listening (is the client running?)`, EXIT.unreachable);
    }
  }
  const logger = createLogger({ level: options.logLevel === 'info' ? 'warn' : options.logLevel, destination: process.stderr, base: { role: 'connect' } });
  const { options: daemonOptions } = loadClientOptions(configFile, process.env, logger, { noConfigForwards: true });
  const daemon = new ClientDaemon({ ...daemonOptions, once: true });
  await daemon.start();
  try {
    await daemon.firstSession;
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  try {
    return await pipeStdio(target, (t) => daemon.openStream(t));
  } finally {
    await daemon.stop();
  }
}

/**
 * Resolves with the exit status, or undefined when no daemon answers (no socket at the path, or
 * nothing listening on it: the caller makes a session of its own). Everything after a daemon
 * accepted the control connection is final: its refusal, a reset, a closed socket.
 */
async function connectViaDaemon(socketPath: string, target: string): Promise<number | undefined> {
  const trust = controlSocketTrust(socketPath, process.getuid?.() ?? 0);
  if (trust.kind === 'absent' || trust.kind === 'not-a-socket') return undefined;
  if (trust.kind === 'untrusted') {
    throw new CliError(
      `control socket ${socketPath} ${trust.why}: not sending the target there (another user may have bound it); use your own daemon's socket (--socket) or fix its owner and folder`,
      EXIT.unreachable,
    );
  }
  const socket = await new Promise<net.Socket | undefined>((resolve, reject) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.off('error', onError);
      resolve(s);
    });
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(undefined);
      else reject(new ConfigError('ERR_CONTROL', `control socket ${socketPath}: ${err.code === 'EACCES' ? 'permission denied' : (err.code ?? err.message)}`));
    };
    s.once('error', onError);
  });
  if (socket === undefined) return undefined;
  socket.on('error', () => {});
  socket.write(`${JSON.stringify({ cmd: 'connect', target })}\n`);
  const answer = await readLine(socket);
  if (answer === undefined) {
    socket.destroy();
    throw new CliError(`control socket ${socketPath}: the client daemon closed the connection without answering`, EXIT.failure);
  }
  let reply: { ok?: unknown; error?: unknown; reason?: unknown };
  try {
    reply = JSON.parse(answer) as typeof reply;
  } catch {
    socket.destroy();
    throw new CliError(`control socket ${socketPath}: malformed answer from the client daemon`, EXIT.failure);
  }
  if (reply.ok !== true) {
    socket.destroy();
    const reason = toReasonCode(reply.reason);
    const message = typeof reply.error === 'string' ? reply.error.slice(0, 1000) : `stream to ${target} refused`;
    if (reason === 'error' && typeof reply.error === 'string' && reply.error.startsWith('unknown control command')) {
      throw new CliError(`control socket ${socketPath}: not a client daemon (${message})`, EXIT.unreachable);
    }
    throw new MuxStreamError('ERR_MUX_STREAM_REFUSED', message, reason);
  }
  // The same stdio pipe as without a daemon: a reset or a truncation rejects with its error.
  return pipeStdio(target, () => new ControlStream(socket));
}

/**
 * stdin/stdout <-> one stream, and what ssh does at the end of a session: it closes the
 * ProxyCommand's stdin and stdout, then sends SIGHUP. After the end of input and an answer from
 * the target, that is a clean close (exit 0): output is discarded from then on, and the far end
 * has HANGUP_GRACE_MS to end its side before the stream is cancelled. A hang-up before that
 * resets the stream and fails.
 */
async function pipeStdio(target: string, open: (target: string) => Duplex): Promise<number> {
  let stream: (Duplex & { reset?: (reason: ReasonCode) => void }) | undefined;
  let inputEnded = false;
  let answered = false;
  let hungUp = false;
  let discard = false;
  let graceTimer: NodeJS.Timeout | undefined;
  const stdout = process.stdout;
  const cancel = (): void => {
    if (stream === undefined || stream.destroyed) return;
    if (typeof stream.reset === 'function') stream.reset('cancel');
    else stream.destroy();
  };
  const onInputEnd = (): void => {
    inputEnded = true;
  };
  process.stdin.once('end', onInputEnd);
  // After the end of input, a closed stdout is the caller going away (ssh's end), not a failure.
  let pending: ((err?: Error | null) => void) | undefined;
  const onStdoutError = (err: Error): void => {
    const callback = pending;
    pending = undefined;
    if (inputEnded) {
      discard = true;
      callback?.();
    } else {
      callback?.(err);
    }
  };
  stdout.on('error', onStdoutError);
  const output = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      answered = true;
      if (discard) return callback();
      if (stdout.write(chunk)) return callback();
      pending = callback;
      stdout.once('drain', () => {
        if (pending === callback) {
          pending = undefined;
          callback();
        }
      });
    },
    final(callback) {
      if (discard) return callback();
      stdout.end(() => callback());
    },
  });
  const onHangup = (): void => {
    hungUp = true;
    discard = true;
    if (!inputEnded || !answered) {
      cancel();
      return;
    }
    graceTimer ??= setTimeout(cancel, HANGUP_GRACE_MS);
  };
  process.on('SIGHUP', onHangup);
  try {
    return await connectStdio(
      target,
      (t) => {
        stream = open(t);
        return stream;
      },
      { stdin: process.stdin, stdout: output },
    );
  } catch (err) {
    if (hungUp && inputEnded && answered) return EXIT.ok;
    if (hungUp) throw new CliError(`hung up (SIGHUP) before the stream to ${target.slice(0, 300)} ended; it was reset`, EXIT.failure, { cause: err });
    throw err;
  } finally {
    if (graceTimer) clearTimeout(graceTimer);
    process.off('SIGHUP', onHangup);
    process.stdin.off('end', onInputEnd);
    stdout.off('error', onStdoutError);
  }
}

function readLine(socket: net.Socket): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const done = (): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(0x0a);
      if (nl < 0) {
        if (buffered.length > 64 * 1024) {
          done();
          reject(new CliError('control socket: answer too long'));
        }
        return;
      }
      done();
      socket.pause();
      const rest = buffered.subarray(nl + 1);
      if (rest.length > 0) socket.unshift(rest);
      resolve(buffered.subarray(0, nl).toString('utf8'));
    };
    const onEnd = (): void => {
      done();
      resolve(undefined);
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}
