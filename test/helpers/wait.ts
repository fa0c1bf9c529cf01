/** The one bounded wait of the test suite: poll a condition until it holds, fail with what was awaited. */

// Taken before any test can install fake timers (vi.useFakeTimers), so that waiting on a condition
// still works, in real time, while a test drives the code's own timers by hand.
const realSetTimeout = globalThis.setTimeout;
const realNow = performance.now.bind(performance);

/**
 * Polls `condition` until it holds; rejects after `timeoutMs`, or as soon as `abort` settles (a
 * process that exited will never print the awaited line) unless the condition then holds. Polls
 * quickly at first (in-memory pairs settle within a few turns) and backs off to every 20 ms (a
 * daemon's log or a socket takes longer), so a test costs what its condition takes. Fake timers
 * do not stop it (see above).
 */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what = 'condition', timeoutMs = 10_000, abort?: Promise<unknown>): Promise<void> {
  const deadline = realNow() + timeoutMs;
  let aborted = false;
  void abort?.then(() => (aborted = true));
  for (let pause = 1; ; pause = Math.min(pause * 2, 20)) {
    if (await condition()) return;
    if (aborted) {
      if (await condition()) return;
      throw new Error(`process exited while waiting for: ${what}`);
    }
    if (realNow() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => realSetTimeout(resolve, pause));
  }
}
