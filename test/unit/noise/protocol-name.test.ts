import { describe, expect, it } from 'vitest';
import { parseProtocolName } from '../../../src/noise/protocol-name.js';
import { PATTERNS } from '../../../src/noise/patterns.js';

describe('protocol names and patterns', () => {
  it('knows all 38 patterns of the spec (3 one-way, 12 interactive, 23 deferred)', () => {
    expect(PATTERNS.size).toBe(38);
    expect([...PATTERNS.values()].filter((p) => p.oneWay).map((p) => p.name)).toEqual(['N', 'K', 'X']);
    for (const p of PATTERNS.values()) {
      // Every pattern's messages alternate and each side sends e exactly once.
      const sent = (side: number) => p.messages.filter((_, i) => i % 2 === side).flat();
      expect(sent(0).filter((t) => t === 'e')).toHaveLength(1);
      if (!p.oneWay) expect(sent(1).filter((t) => t === 'e')).toHaveLength(1);
    }
  });

  it('parses psk modifiers and applies them to the right message', () => {
    const ik = parseProtocolName('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
    expect(ik.pattern.messages).toEqual([
      ['e', 'es', 's', 'ss'],
      ['e', 'ee', 'se', 'psk'],
    ]);
    expect(ik).toMatchObject({ cipher: 'ChaChaPoly', hash: 'BLAKE2s', dh: '25519', pskPositions: [2] });
    const both = parseProtocolName('Noise_XXpsk3+psk0_25519_AESGCM_SHA512');
    expect(both.pskPositions).toEqual([0, 3]);
    expect(both.pattern.messages).toEqual([
      ['psk', 'e'],
      ['e', 'ee', 's', 'es'],
      ['s', 'se', 'psk'],
    ]);
    expect(parseProtocolName('Noise_X1K1_25519_AESGCM_BLAKE2b').pattern.messages).toHaveLength(4);
    expect(parseProtocolName('Noise_Npsk0_25519_ChaChaPoly_SHA256').pattern.oneWay).toBe(true);
  });
});
