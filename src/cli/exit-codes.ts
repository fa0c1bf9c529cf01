/**
 * Documented exit codes of `twoway` (README "Exit codes"). Scripts branch on these.
 */
export const EXIT = {
  ok: 0,
  /** A runtime failure: the tunnel could not be set up or broke. */
  failure: 1,
  /** Bad command-line usage (unknown option, missing argument). */
  usage: 2,
  /** A configuration or key file is invalid or unsafe. */
  config: 3,
  /** Authentication failed: the server refused us, or the server's key is not the pinned one. */
  auth: 4,
  /** The tunnel is up but the target was refused (not permitted, connection refused, unreachable...). */
  refused: 5,
  /** The daemon's control socket could not be reached (`twoway status`, `peers` reload). */
  unreachable: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
