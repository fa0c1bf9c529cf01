/**
 * A log destination that can never stop the daemon: write errors (EPIPE when journald goes away,
 * ENOSPC on a full disk) are swallowed, and lines are dropped rather than buffered without bound
 * when the stream is slow. The count of dropped lines is reported once the stream recovers.
 */
import type { Writable } from 'node:stream';

/** Above this many bytes queued in the stream, new lines are dropped. */
export const MAX_LOG_BACKLOG_BYTES = 1024 * 1024;

/** The subset of a stream pino writes to. */
export interface LineSink {
  write(line: string): void;
}

export interface SafeDestination extends LineSink {
  /** Lines dropped so far (write errors or backlog). */
  readonly dropped: number;
}

/**
 * Wraps `stream` so pino can write to it safely. `onDropped(count)` returns the line reporting
 * drops (a JSON line) written before the next line after a recovery.
 */
export function safeDestination(stream: Writable, onDropped: (count: number) => string): SafeDestination {
  let dropped = 0;
  let unreported = 0;
  // Without this listener an EPIPE or ENOSPC 'error' event would crash the process (SECURITY.md #3).
  // The stream is then destroyed and later lines are counted as dropped.
  stream.on('error', () => {});
  const attempt = (line: string): boolean => {
    if (stream.destroyed || stream.writableLength > MAX_LOG_BACKLOG_BYTES) return false;
    try {
      stream.write(line);
      return true;
    } catch {
      // A synchronous file stream (stdout redirected to a file) throws ENOSPC from write().
      return false;
    }
  };
  return {
    get dropped() {
      return dropped;
    },
    write(line: string): void {
      if (unreported > 0 && attempt(onDropped(unreported))) unreported = 0;
      if (!attempt(line)) {
        dropped += 1;
        unreported += 1;
      }
    },
  };
}
