/**
 * Reconnect delays: exponential backoff with full jitter, capped (SECURITY.md defaults: 1 s to 60 s).
 * attempt 0 is the first retry after a failure.
 */
export interface BackoffOptions {
  readonly minMs: number;
  readonly maxMs: number;
  readonly random?: () => number;
}

export function backoffDelayMs(attempt: number, options: BackoffOptions): number {
  const random = options.random ?? Math.random;
  const ceiling = Math.min(options.maxMs, options.minMs * 2 ** Math.min(attempt, 30));
  // Full jitter, but never below the minimum: a flapping server is not hammered.
  return Math.round(options.minMs + random() * Math.max(0, ceiling - options.minMs));
}
