/**
 * The one clock type: milliseconds from a monotonic source, read on demand. Everything that
 * measures intervals takes a Clock so tests can inject their own (or use vitest's fake timers,
 * which also fake performance.now()).
 */

/** Milliseconds from a monotonic clock; injectable for tests. */
export type Clock = () => number;

/** performance.now(): monotonic, unaffected by wall-clock changes. */
export const monotonicMs: Clock = () => performance.now();
