import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64Key, isBase64Key } from '../../../src/config/base64-key.js';

describe('decodeBase64Key', () => {
  it('agrees with Buffer for every 32-byte value (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const text = Buffer.from(bytes).toString('base64');
        expect(isBase64Key(text)).toBe(true);
        expect(decodeBase64Key(text)).toEqual(new Uint8Array(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses anything but the canonical 44-character form', () => {
    const good = randomBytes(32).toString('base64');
    for (const bad of [
      good.slice(0, 43),
      `${good}=`,
      good.replace('=', 'A'),
      `${good.slice(0, 42)}B=`,
      `${good.slice(0, 10)}Ł${good.slice(11)}`,
      `${good.slice(0, 10)}-${good.slice(11)}`,
      '',
    ]) {
      expect(isBase64Key(bad)).toBe(false);
      expect(decodeBase64Key(bad)).toBeUndefined();
    }
  });
});
