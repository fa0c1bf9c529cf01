/**
 * Record buffers (src/crypto/record-pool.ts): a released buffer is handed out again, never twice
 * at once (a second release is ignored), small records and foreign buffers are never pooled.
 */
import { describe, expect, it } from 'vitest';
import { isPooledRecord, releaseRecordBuffer, takeRecordBuffer } from '../../../src/crypto/record-pool.js';

describe('record pool', () => {
  it('reuses a released buffer, and a double release does not hand it out twice', () => {
    const a = takeRecordBuffer(65_009);
    expect(a.length).toBe(65_009);
    expect(isPooledRecord(a)).toBe(true);
    releaseRecordBuffer(a);
    expect(isPooledRecord(a)).toBe(false);
    releaseRecordBuffer(a);
    const b = takeRecordBuffer(40_000);
    const c = takeRecordBuffer(40_000);
    expect(b.buffer).toBe(a.buffer);
    expect(c.buffer).not.toBe(a.buffer);
    expect(isPooledRecord(b) && isPooledRecord(c)).toBe(true);
    releaseRecordBuffer(b);
    releaseRecordBuffer(c);
  });

  it('small records and buffers it did not hand out are never pooled', () => {
    const small = takeRecordBuffer(100);
    expect(isPooledRecord(small)).toBe(false);
    const foreign = Buffer.alloc(65_000);
    releaseRecordBuffer(foreign);
    const next = takeRecordBuffer(65_000);
    expect(next.buffer).not.toBe(foreign.buffer);
    releaseRecordBuffer(next);
  });
});
