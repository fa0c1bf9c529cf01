/**
 * Record buffers reused once the transport has written them: each bulk record otherwise costs a
 * fresh ~64 KiB ArrayBuffer, which V8 counts as external memory (and on Node 24 a mark-compact
 * follows every 64 MiB of them, bench/profile-notes.md round 3).
 *
 * A buffer is handed out by takeRecordBuffer and comes back only through releaseRecordBuffer,
 * which the WebSocket transport calls from the socket's write callback (the kernel has the bytes).
 * A buffer that never comes back (an in-memory channel, a failed write) is simply collected.
 * Each buffer is out or free, never both: a second release of the same buffer is ignored.
 */

import { allocOutput } from './backend.js';

/** The largest record: header + a 65535-byte Noise message. */
const POOLED_BYTES = 1 + 65535;
/** Smaller records are allocated as before (they are not the bulk of the bytes). */
const POOLED_MIN_BYTES = 16 * 1024;
/** Free buffers kept at most. */
const POOL_MAX_FREE = 16;

const free: ArrayBuffer[] = [];
/** true while a pooled buffer is out (handed to a sealer, not yet released). */
const out = new WeakMap<ArrayBuffer, boolean>();

/** A buffer of `length` bytes (contents undefined) for a record about to be sealed. */
export function takeRecordBuffer(length: number): Uint8Array {
  if (length < POOLED_MIN_BYTES || length > POOLED_BYTES) {
    return allocOutput(length);
  }
  let buffer = free.pop();
  if (buffer === undefined) {
    buffer = new ArrayBuffer(POOLED_BYTES);
  }
  out.set(buffer, true);
  return Buffer.from(buffer, 0, length);
}

/** True when `record` is a pooled buffer currently out. */
export function isPooledRecord(record: Uint8Array): boolean {
  return out.get(record.buffer as ArrayBuffer) === true;
}

/** Gives a written record's buffer back; ignored for anything not pooled or already back. */
export function releaseRecordBuffer(record: Uint8Array): void {
  const buffer = record.buffer as ArrayBuffer;
  if (out.get(buffer) !== true) return;
  out.set(buffer, false);
  if (free.length < POOL_MAX_FREE) free.push(buffer);
}
