import type { Logger } from 'pino';
import { sdNotify, watchdogIntervalMs } from './sd-notify.js';
import { TwowayError } from '../errors.js';
import { defaultBackend, nativeAeadStatus } from '../crypto/get-backend.js';
import { EVENTS } from '../log/events.js';
import { flushLogSummaries } from '../log/logger.js';
import { EXIT } from './exit-codes.js';
import { CliError, exitCodeFor } from './fail.js';

/**
 * Process plumbing shared by `server` and `client`: systemd readiness and watchdog, signals, and
 * the last-resort error handlers. Resolves when the daemon has stopped.
 */
export function runUntilStopped(options: { readonly logger: Logger; readonly stop: () => Promise<void>; readonly reload?: () => Promise<void> | void }): {
  ready(status: string): void;
  stopped: Promise<void>;
} {
  const { logger } = options;
  const notifySocket = process.env.NOTIFY_SOCKET;
  let stopping = false;
  let watchdog: NodeJS.Timeout | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  // Notifications go out one after the other: each is its own systemd-notify process, and a READY=1
  // that overtook RELOADING=1 would leave systemd "reloading" for good (the next reload hangs).
  let sent: Promise<unknown> = Promise.resolve();
  const notify = (state: string): void => {
    sent = sent.then(() => sdNotify(notifySocket, state)).catch(() => false);
  };

  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (watchdog) clearInterval(watchdog);
    logger.info({ event: EVENTS.daemonStop, signal }, `received ${signal}, stopping`);
    notify('STOPPING=1');
    try {
      await options.stop();
    } finally {
      flushLogSummaries(logger);
      resolveStopped();
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (!options.reload) return;
    notify('RELOADING=1');
    void Promise.resolve(options.reload()).finally(() => notify('READY=1'));
  });
  // An unexpected error is logged and ends the process non-zero, so systemd restarts it.
  process.on('uncaughtException', (err) => {
    logger.fatal({ event: EVENTS.internalError, err: { message: err.message, stack: err.stack } }, `internal error: ${err.message}`);
    process.exit(70);
  });
  process.on('unhandledRejection', (err) => {
    const e = err as Error;
    logger.fatal({ event: EVENTS.internalError, err: { message: e?.message, stack: e?.stack } }, `internal error: ${e?.message}`);
    process.exit(70);
  });

  return {
    ready(status: string) {
      // Which crypto seals the records: 'native' (the optional addon) or 'node' (node:crypto), and why not native.
      const crypto = nativeAeadStatus.available ? { crypto: defaultBackend.name } : { crypto: defaultBackend.name, nativeAead: nativeAeadStatus.reason };
      logger.info({ event: EVENTS.daemonReady, ...crypto }, status);
      notify(`READY=1\nSTATUS=${status}`);
      const every = watchdogIntervalMs(process.env.WATCHDOG_USEC, process.env.WATCHDOG_PID);
      if (every !== undefined) watchdog = setInterval(() => notify('WATCHDOG=1'), every).unref();
    },
    stopped,
  };
}

/**
 * Local resources a daemon acquires at start-up, closed in reverse order when a later step fails
 * (so a failed start leaves nothing half-open and the process can exit).
 */
export class StartupResources {
  readonly #closers: Array<() => Promise<void> | void> = [];

  /** Runs `open`; its failure becomes a one-line start-up error naming `what`; `close` is kept. */
  async acquire<T>(what: string, open: () => Promise<T>, close: (value: T) => Promise<void> | void): Promise<T> {
    let value: T;
    try {
      value = await open();
    } catch (err) {
      await this.closeAll();
      throw startupError(what, err);
    }
    this.#closers.push(() => close(value));
    return value;
  }

  /** Closes everything acquired so far, newest first; errors while closing are ignored. */
  async closeAll(): Promise<void> {
    for (const close of this.#closers.splice(0).reverse()) {
      try {
        await close();
      } catch {
        // closing is best effort: the process exits next
      }
    }
  }
}

/** A start-up failure: the documented exit code of the cause (config problems 3), else 1. */
function startupError(what: string, err: unknown): Error {
  if (err instanceof TwowayError && exitCodeFor(err) !== EXIT.failure) return err;
  // Node's own errors ("listen EADDRINUSE: address already in use 127.0.0.1:9100") are said
  // plainly; twoway's errors already name what failed.
  const e = err as NodeJS.ErrnoException;
  const cause = e.cause as NodeJS.ErrnoException | undefined;
  const sys = e.syscall !== undefined ? e.code : err instanceof TwowayError ? cause?.code : undefined;
  const why =
    sys === 'EADDRINUSE'
      ? 'address already in use'
      : sys === 'EACCES'
        ? 'permission denied'
        : sys === 'EADDRNOTAVAIL'
          ? 'address not available on this host'
          : sys === 'ENOENT'
            ? 'no such file or directory'
            : e.message;
  return new CliError(`cannot start: ${what}: ${why}`, EXIT.failure, { cause: err });
}
