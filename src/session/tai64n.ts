/**
 * TAI64N timestamps (https://cr.yp.to/libtai/tai64.html) for the first handshake message, as in
 * WireGuard: 8 bytes big-endian 2^62 + seconds, 4 bytes big-endian nanoseconds. Byte order equals
 * time order, so replay checks compare bytes. The nanoseconds are rounded down to a multiple of
 * 2^24 ns (about 16.8 ms) so the timestamp is no fine-grained clock oracle; that is also why one
 * key may start at most one handshake per ~20 ms.
 */
export const TAI64N_BYTES = 12;
const TAI64_EPOCH = 2n ** 62n;
/** Unix time lags TAI by 37 s (since 2017); an offset constant for all peers, so order holds. */
const TAI_OFFSET_SECONDS = 37n;
const NANOSECOND_WHITENER = 0xff000000;

/** The current time as TAI64N. `nowMs` exists for tests. */
export function tai64nNow(nowMs: number = Date.now()): Uint8Array {
  const out = new Uint8Array(TAI64N_BYTES);
  const view = new DataView(out.buffer);
  const seconds = Math.floor(nowMs / 1000);
  const nanos = (nowMs - seconds * 1000) * 1_000_000;
  view.setBigUint64(0, TAI64_EPOCH + TAI_OFFSET_SECONDS + BigInt(seconds));
  view.setUint32(8, (Math.floor(nanos) & NANOSECOND_WHITENER) >>> 0);
  return out;
}

/** Negative, zero or positive as `a` is before, equal to or after `b`. */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < TAI64N_BYTES; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
