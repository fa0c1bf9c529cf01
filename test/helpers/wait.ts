/** The one bounded wait of the test suite: poll a condition until it holds, fail with what was awaited. */

/**
 * Polls `condition` until it holds; rejects after `timeoutMs`, or as soon as `abort` settles (a
 * process that exited will never print the awaited line) unless the condition then holds. Polls
 * quickly at first (in-memory pairs settle within a few turns) and backs off to every 20 ms (a
 * daemon's log or a socket takes longer), so a test costs what its condition takes.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what = 'condition',
  timeoutMs = 10_000,
  abort?: Promise<unknown>,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let aborted = false;
  void abort?.then(() => (aborted = true));
  for (let pause = 1; ; pause = Math.min(pause * 2, 20)) {
    if (await condition()) return;
    if (aborted) {
      if (await condition()) return;
      throw new Error(`process exited while waiting for: ${what}`);
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}
