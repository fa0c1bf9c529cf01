import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { runTwoway, stopAll } from '../helpers/processes.js';

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

function wg(args: string[], input?: string): string {
  return execFileSync('wg', args, { input, encoding: 'utf8' }).trim();
}

afterAll(stopAll);

describe('twoway keygen / pubkey (WireGuard key format)', () => {
  it('keygen prints a base64 private key with WireGuard clamping', async () => {
    const { code, stdout } = await runTwoway(['keygen']);
    expect(code).toBe(0);
    const key = stdout.trim();
    expect(key).toMatch(KEY_RE);
    const raw = Buffer.from(key, 'base64');
    expect(raw.length).toBe(32);
    expect(raw[0]! & 7).toBe(0);
    expect(raw[31]! & 0x80).toBe(0);
    expect(raw[31]! & 0x40).toBe(0x40);
  });

  it('keygen never prints the same key twice', async () => {
    const a = (await runTwoway(['keygen'])).stdout;
    const b = (await runTwoway(['keygen'])).stdout;
    expect(a).not.toBe(b);
  });

  it('agrees with the real wg: `wg genkey | twoway pubkey` equals `wg genkey | wg pubkey`', async () => {
    for (let i = 0; i < 5; i++) {
      const priv = wg(['genkey']);
      const ours = await runTwoway(['pubkey'], { input: `${priv}\n` });
      expect(ours.code).toBe(0);
      expect(ours.stdout.trim()).toBe(wg(['pubkey'], `${priv}\n`));
    }
  });

  it('wg accepts keys from twoway keygen and derives the same public key', async () => {
    const priv = (await runTwoway(['keygen'])).stdout;
    const ours = await runTwoway(['pubkey'], { input: priv });
    expect(ours.stdout.trim()).toBe(wg(['pubkey'], priv));
  });

  it('pubkey refuses junk with a clear error that does not echo the input', async () => {
    const secretish = 'c2VjcmV0LXNob3VsZC1uZXZlci1iZS1lY2hvZWQ=';
    const result = await runTwoway(['pubkey'], { input: `${secretish}\n` });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/^twoway: .*private key on stdin.*\n$/);
    expect(result.stderr).not.toContain(secretish);
    expect(result.stdout).toBe('');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('pubkey refuses empty input', async () => {
    const result = await runTwoway(['pubkey'], { input: '' });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('private key on stdin');
  });
});
