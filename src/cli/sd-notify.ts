/**
 * sd_notify(3) for Type=notify units without a native addon.
 *
 * The protocol is one datagram on the AF_UNIX SOCK_DGRAM socket named by $NOTIFY_SOCKET, and
 * Node cannot open unix datagram sockets (net only does SOCK_STREAM, dgram only UDP). So the
 * message is sent by the `systemd-notify` tool, spawned per call. Because the datagram comes from
 * that child and not from the main PID, the units set NotifyAccess=all; systemd-notify waits
 * (by default, without --no-block) until the manager has processed the message, so it is
 * attributed to the service's cgroup before the child exits.
 *
 * The caller (cli/) reads NOTIFY_SOCKET and passes it in; nothing here reads the environment.
 */
import { execFile } from 'node:child_process';

/** How long one systemd-notify run may take before it is killed. */
export const SD_NOTIFY_TIMEOUT_MS = 10_000;
/** One `VARIABLE=value` assignment per line, as sd_notify(3) defines the message. */
const ASSIGNMENT = /^[A-Z][A-Z0-9_]*=[^\n\0]*$/;

export interface SdNotifyOptions {
  /** The tool to run (tests point this elsewhere). Default: systemd-notify from PATH. */
  readonly command?: string;
  readonly timeoutMs?: number;
}

/**
 * Sends `state` (e.g. 'READY=1', 'WATCHDOG=1', 'RELOADING=1\nSTATUS=reloading', 'STOPPING=1')
 * to the service manager listening on `socketPath`. Resolves true when delivered, false when
 * `socketPath` is empty (not run by systemd) or delivery failed: notification must never take
 * the daemon down. Throws only on a malformed `state` (a programming error).
 */
export function sdNotify(socketPath: string | undefined, state: string, options: SdNotifyOptions = {}): Promise<boolean> {
  const assignments = state.split('\n').filter((line) => line !== '');
  if (assignments.length === 0 || !assignments.every((line) => ASSIGNMENT.test(line))) {
    throw new TypeError(`sdNotify: expected VARIABLE=value lines, got ${JSON.stringify(state.slice(0, 80))}`);
  }
  if (socketPath === undefined || socketPath === '') return Promise.resolve(false);
  return new Promise((resolve) => {
    const child = execFile(
      options.command ?? 'systemd-notify',
      // '--' so no value is ever taken for an option.
      ['--', ...assignments],
      {
        env: { NOTIFY_SOCKET: socketPath, PATH: process.env.PATH ?? '/usr/bin:/bin' },
        timeout: options.timeoutMs ?? SD_NOTIFY_TIMEOUT_MS,
        windowsHide: true,
      },
      (err) => resolve(err === null),
    );
    child.on('error', () => resolve(false));
  });
}

/**
 * The interval at which to send WATCHDOG=1: half of $WATCHDOG_USEC as sd_watchdog_enabled(3)
 * advises, or undefined when the watchdog is off or meant for another process ($WATCHDOG_PID).
 * The caller passes the two environment values in.
 */
export function watchdogIntervalMs(watchdogUsec: string | undefined, watchdogPid: string | undefined, pid = process.pid): number | undefined {
  if (watchdogUsec === undefined || !/^[0-9]{1,15}$/.test(watchdogUsec)) return undefined;
  if (watchdogPid !== undefined && watchdogPid !== '' && watchdogPid !== String(pid)) return undefined;
  const usec = Number(watchdogUsec);
  if (usec === 0) return undefined;
  return Math.max(1, Math.floor(usec / 2_000));
}
