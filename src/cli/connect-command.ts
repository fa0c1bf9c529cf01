import os from 'node:os';
import { Writable, type Duplex } from 'node:stream';
import { requestConnect } from '../control/connect-request.js';
import { ClientDaemon } from '../client/client-daemon.js';
import type { ReasonCode } from '../mux/reason.js';
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
  const answer = await requestConnect(socketPath, target, process.getuid?.() ?? 0);
  switch (answer.kind) {
    case 'no-daemon':
      return undefined;
    case 'untrusted':
      throw new CliError(
        `control socket ${socketPath} ${answer.why}: not sending the target there (another user may have bound it); use your own daemon's socket (--socket) or fix its owner and folder`,
        EXIT.unreachable,
      );
    case 'bad-answer':
      if (answer.why === 'too-long') throw new CliError('control socket: answer too long');
      throw new CliError(
        answer.why === 'closed'
          ? `control socket ${socketPath}: the client daemon closed the connection without answering`
          : `control socket ${socketPath}: malformed answer from the client daemon`,
        EXIT.failure,
      );
    case 'not-a-client-daemon':
      throw new CliError(`control socket ${socketPath}: not a client daemon (${answer.message})`, EXIT.unreachable);
    case 'open':
      // The same stdio pipe as without a daemon: a reset or a truncation rejects with its error.
      return pipeStdio(target, answer.stream);
  }
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
