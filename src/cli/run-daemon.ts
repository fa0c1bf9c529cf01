import type { Logger } from 'pino';
import { sdNotify, watchdogIntervalMs } from '../daemon/sd-notify.js';
import { EVENTS } from '../log/events.js';

/**
 * Process plumbing shared by `server` and `client`: systemd readiness and watchdog, signals, and
 * the last-resort error handlers. Resolves when the daemon has stopped.
 */
export function runUntilStopped(options: {
  readonly logger: Logger;
  readonly stop: () => Promise<void>;
  readonly reload?: () => Promise<void> | void;
}): { ready(status: string): void; stopped: Promise<void> } {
  const { logger } = options;
  const notifySocket = process.env.NOTIFY_SOCKET;
  let stopping = false;
  let watchdog: NodeJS.Timeout | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));

  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    if (watchdog) clearInterval(watchdog);
    logger.info({ event: EVENTS.daemonStop, signal }, `received ${signal}, stopping`);
    void sdNotify(notifySocket, 'STOPPING=1');
    try {
      await options.stop();
    } finally {
      resolveStopped();
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (!options.reload) return;
    void sdNotify(notifySocket, 'RELOADING=1');
    void Promise.resolve(options.reload()).finally(() => void sdNotify(notifySocket, 'READY=1'));
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
      logger.info({ event: EVENTS.daemonReady }, status);
      void sdNotify(notifySocket, `READY=1\nSTATUS=${status}`);
      const every = watchdogIntervalMs(process.env.WATCHDOG_USEC, process.env.WATCHDOG_PID);
      if (every !== undefined) watchdog = setInterval(() => void sdNotify(notifySocket, 'WATCHDOG=1'), every).unref();
    },
    stopped,
  };
}
