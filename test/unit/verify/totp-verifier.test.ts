import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TotpVerifier } from '../../../src/verify/totp-verifier.js';
import { enrolTotp, readTotpEntry, totpOf } from '../../../src/verify/totp-secrets.js';
import { useTempDir } from '../../helpers/config-fixture.js';

const T0 = 1_800_000_000_000; // a step boundary: 1.8e12 ms / 30 s is whole
const STEP_MS = 30_000;
const ctx = { peerName: 'alice', fingerprint: 'fp-alice', binding: new Uint8Array(32) };

function setup(dir: string, options: { maxAttempts?: number; lockoutMs?: number } = {}) {
  const file = path.join(dir, 'totp.json');
  enrolTotp(file, 'alice', 'twoway');
  const secret = readTotpEntry(file, 'alice')!.secret;
  let now = T0 + 1_000;
  const verifier = new TotpVerifier({ file, ...options, now: () => now });
  return {
    file,
    verifier,
    codeAt: (ms: number) => totpOf(secret).generate({ timestamp: ms }),
    setNow: (ms: number) => (now = ms),
  };
}

describe('TOTP verifier', () => {
  const tempDir = useTempDir();

  it('accepts the code of the current step and of one step either side, not two', () => {
    for (const [offset, ok] of [
      [-2, false],
      [-1, true],
      [0, true],
      [1, true],
      [2, false],
    ] as const) {
      const t = setup(tempDir());
      const outcome = t.verifier.verify(ctx, t.codeAt(T0 + 1_000 + offset * STEP_MS));
      expect(outcome.ok, `offset ${offset}`).toBe(ok);
      if (outcome.ok) expect(outcome.person).toEqual({ identity: 'alice', groups: [] });
      else expect(outcome.failure.error).toBe('wrong-code');
    }
  });

  it('accepts each step once: the same code again, or an older step, is a replay', () => {
    const t = setup(tempDir());
    const now = t.codeAt(T0 + 1_000);
    expect(t.verifier.verify(ctx, now).ok).toBe(true);
    const again = t.verifier.verify(ctx, now);
    expect(again.ok === false && again.failure.error).toBe('replay');
    const older = t.verifier.verify(ctx, t.codeAt(T0 + 1_000 - STEP_MS));
    expect(older.ok === false && older.failure.error).toBe('replay');
    expect(readTotpEntry(t.file, 'alice')!.lastStep).toBe(Math.floor((T0 + 1_000) / STEP_MS));
    expect(t.verifier.verify(ctx, t.codeAt(T0 + 1_000 + STEP_MS)).ok).toBe(true);
  });

  it('locks the key after max_attempts wrong codes, refuses even the right code while locked, and unlocks after lockout_ms', () => {
    const t = setup(tempDir(), { maxAttempts: 3, lockoutMs: 60_000 });
    const right = t.codeAt(T0 + 1_000);
    const wrong = right === '000000' ? '000001' : '000000';
    const results = [1, 2, 3].map(() => t.verifier.verify(ctx, wrong));
    expect(results.map((r) => (r.ok ? 'ok' : r.failure.error))).toEqual(['wrong-code', 'wrong-code', 'locked']);
    expect(results.map((r) => !r.ok && r.lockedNow)).toEqual([false, false, true]);
    const locked = t.verifier.verify(ctx, right);
    expect(locked.ok === false && locked.failure).toMatchObject({ error: 'locked', retryAfterMs: 60_000 });
    expect(t.verifier.verify({ ...ctx, fingerprint: 'another key' }, right).ok).toBe(true);
    t.setNow(T0 + 61_000 + STEP_MS);
    expect(t.verifier.lockedFor(ctx.fingerprint)).toBe(0);
    expect(t.verifier.verify(ctx, t.codeAt(T0 + 61_000 + STEP_MS)).ok).toBe(true);
  });

  it('a success clears the count of wrong codes', () => {
    const t = setup(tempDir(), { maxAttempts: 2 });
    expect(t.verifier.verify(ctx, '999999x').ok).toBe(false);
    const wrong = t.codeAt(T0 + 1_000) === '123456' ? '654321' : '123456';
    expect(t.verifier.verify(ctx, wrong).ok).toBe(false);
    expect(t.verifier.verify(ctx, t.codeAt(T0 + 1_000)).ok).toBe(true);
    const next = t.verifier.verify(ctx, wrong);
    expect(next.ok === false && next.failure.error).toBe('wrong-code');
  });

  it('refuses malformed codes without counting them, and a peer without a secret as not enrolled', () => {
    const t = setup(tempDir(), { maxAttempts: 1 });
    for (const code of ['12345', '1234567', 'abcdef', 123456, undefined]) {
      const r = t.verifier.verify(ctx, code);
      expect(r.ok === false && r.failure.error).toBe('bad-request');
    }
    const bob = t.verifier.verify({ ...ctx, peerName: 'bob', fingerprint: 'fp-bob' }, '123456');
    expect(bob.ok === false && bob.failure.error).toBe('not-enrolled');
    expect(t.verifier.lockedFor(ctx.fingerprint)).toBe(0);
  });
});
