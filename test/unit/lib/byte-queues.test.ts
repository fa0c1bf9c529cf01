import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { COALESCE_BELOW_BYTES, COALESCE_BUFFER_BYTES, ByteQueue, ReceiveQueue } from '../../../src/lib/byte-queues.js';

/** A deterministic generator, so a failure can be replayed. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

const concat = (parts: readonly Uint8Array[]): Buffer => Buffer.concat(parts.map((p) => Buffer.from(p)));

describe('ByteQueue', () => {
  it('hands back exactly the written bytes, in order, for any split (200 random runs)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rand = lcg(seed);
      const q = new ByteQueue();
      const written: Buffer[] = [];
      const taken: Uint8Array[] = [];
      for (let step = 0; step < 40; step++) {
        if (rand() < 0.5) {
          const chunk = randomBytes(Math.floor(rand() * 3000));
          written.push(chunk);
          q.push(chunk);
        } else if (q.bytes > 0) {
          const n = 1 + Math.floor(rand() * q.bytes);
          const parts = q.take(n);
          expect(parts.reduce((sum, p) => sum + p.length, 0)).toBe(n);
          taken.push(...parts);
        }
      }
      if (q.bytes > 0) taken.push(...q.take(q.bytes));
      expect(q.bytes).toBe(0);
      expect(concat(taken).equals(concat(written))).toBe(true);
    }
  });

  it('returns views of the written chunks, not copies', () => {
    const q = new ByteQueue();
    const chunk = Buffer.from('abcdef');
    q.push(chunk);
    const [part] = q.take(3);
    expect(part!.buffer).toBe(chunk.buffer);
  });

  it('reads a byte at any offset across parts without removing it', () => {
    const q = new ByteQueue();
    q.push(Buffer.from('ab'));
    q.push(Buffer.alloc(0));
    q.push(Buffer.from('cde'));
    expect([0, 1, 2, 4].map((i) => String.fromCharCode(q.byteAt(i)))).toEqual(['a', 'b', 'c', 'e']);
    expect(q.bytes).toBe(5);
    expect(() => q.byteAt(5)).toThrow(RangeError);
  });

  it('refuses to take more than it holds, or nothing; clear() empties it', () => {
    const q = new ByteQueue();
    q.push(Buffer.from('abc'));
    expect(() => q.take(4)).toThrow(RangeError);
    expect(() => q.take(0)).toThrow(RangeError);
    q.clear();
    expect(q.bytes).toBe(0);
    expect(() => q.take(1)).toThrow(RangeError);
  });
});

describe('ReceiveQueue', () => {
  it('delivers every byte in order across small and large payloads (200 random runs)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rand = lcg(seed);
      const q = new ReceiveQueue();
      const pushed: Buffer[] = [];
      const out: Uint8Array[] = [];
      for (let step = 0; step < 60; step++) {
        if (rand() < 0.6) {
          const size = rand() < 0.8 ? Math.floor(rand() * COALESCE_BELOW_BYTES) : COALESCE_BELOW_BYTES + Math.floor(rand() * 20_000);
          const payload = randomBytes(size);
          pushed.push(payload);
          q.push(payload);
        } else {
          const chunk = q.shift();
          if (chunk !== undefined) out.push(chunk);
        }
        expect(q.bytes).toBe(pushed.reduce((s, p) => s + p.length, 0) - out.reduce((s, p) => s + p.length, 0));
      }
      for (let chunk = q.shift(); chunk !== undefined; chunk = q.shift()) out.push(chunk);
      expect(q.bytes).toBe(0);
      expect(concat(out).equals(concat(pushed))).toBe(true);
    }
  });

  it('packs one-byte payloads into shared buffers: 10,000 of them are a handful of chunks', () => {
    const q = new ReceiveQueue();
    for (let i = 0; i < 10_000; i++) q.push(Uint8Array.of(i & 255));
    let chunks = 0;
    let bytes = 0;
    for (let chunk = q.shift(); chunk !== undefined; chunk = q.shift()) {
      chunks++;
      bytes += chunk.length;
      expect(chunk.length).toBeLessThanOrEqual(COALESCE_BUFFER_BYTES);
    }
    expect(bytes).toBe(10_000);
    expect(chunks).toBe(Math.ceil(10_000 / COALESCE_BUFFER_BYTES));
  });

  it('copies a large payload that would pin a much larger message, and keeps one that would not', () => {
    const message = Buffer.alloc(64 * 1024);
    const q = new ReceiveQueue();
    q.push(message.subarray(0, 8 * 1024)); // 8 KiB of a 64 KiB message: copied
    q.push(message.subarray(0, 40 * 1024)); // most of it: kept as a view
    expect(q.shift()!.buffer).not.toBe(message.buffer);
    expect(q.shift()!.buffer).toBe(message.buffer);
  });
});
