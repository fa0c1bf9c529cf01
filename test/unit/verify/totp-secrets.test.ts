import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { advanceTotpStep, enrolTotp, readTotpEntry, removeTotp, totpOf } from '../../../src/verify/totp-secrets.js';
import { tempDir } from '../../helpers/temp-dir.js';

describe('TOTP secrets file', () => {
  let dir: string;
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a file root creates in the service user's folder belongs to that user, so the daemon can keep its replay marks (needs root)", () => {
    expect(process.getuid?.(), 'this test changes owners: run the suite as root').toBe(0);
    dir = tempDir('totp');
    fs.chownSync(dir, 65534, 65534);
    const file = path.join(dir, 'totp.json');
    enrolTotp(file, 'bob', 'twoway');
    expect([fs.statSync(file).uid, fs.statSync(file).gid, fs.statSync(file).mode & 0o777]).toEqual([65534, 65534, 0o600]);
  });

  it('enrols a peer: a 0600 file, an otpauth URI whose secret generates the codes the server checks', () => {
    dir = tempDir('totp');
    const file = path.join(dir, 'totp-secrets.json');
    const { uri } = enrolTotp(file, 'alice', 'corp vpn');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const url = new URL(uri);
    expect(url.protocol).toBe('otpauth:');
    expect(url.searchParams.get('issuer')).toBe('corp vpn');
    expect(url.searchParams.get('digits')).toBe('6');
    expect(url.searchParams.get('period')).toBe('30');
    const secret = url.searchParams.get('secret')!;
    const entry = readTotpEntry(file, 'alice')!;
    expect(entry.secret).toBe(secret);
    expect(entry.lastStep).toBe(0);
    const at = 1_800_000_000_000;
    expect(totpOf(secret).generate({ timestamp: at })).toBe(totpOf(entry.secret, 'x', 'y').generate({ timestamp: at }));
    expect(readTotpEntry(file, 'bob')).toBeUndefined();
  });

  it('advances the replay mark only upwards', () => {
    dir = tempDir('totp');
    const file = path.join(dir, 'totp-secrets.json');
    enrolTotp(file, 'alice', 'twoway');
    expect(advanceTotpStep(file, 'alice', 100)).toBe(true);
    expect(advanceTotpStep(file, 'alice', 100)).toBe(false);
    expect(advanceTotpStep(file, 'alice', 99)).toBe(false);
    expect(advanceTotpStep(file, 'alice', 101)).toBe(true);
    expect(readTotpEntry(file, 'alice')!.lastStep).toBe(101);
    expect(advanceTotpStep(file, 'nobody', 5)).toBe(false);
  });

  it('re-enrolling replaces the secret and resets the mark; remove drops it', () => {
    dir = tempDir('totp');
    const file = path.join(dir, 'totp-secrets.json');
    enrolTotp(file, 'alice', 'twoway');
    const first = readTotpEntry(file, 'alice')!.secret;
    advanceTotpStep(file, 'alice', 7);
    enrolTotp(file, 'alice', 'twoway');
    const second = readTotpEntry(file, 'alice')!;
    expect(second.secret).not.toBe(first);
    expect(second.lastStep).toBe(0);
    expect(removeTotp(file, 'alice')).toBe(true);
    expect(removeTotp(file, 'alice')).toBe(false);
    expect(readTotpEntry(file, 'alice')).toBeUndefined();
  });

  it('refuses a secrets file readable by others, and a malformed one, without showing its content', () => {
    dir = tempDir('totp');
    const file = path.join(dir, 'totp-secrets.json');
    enrolTotp(file, 'alice', 'twoway');
    fs.chmodSync(file, 0o644);
    expect(() => readTotpEntry(file, 'alice')).toThrow(/chmod 600/);
    fs.writeFileSync(file, '{"version":1,"peers":{"alice":{"secret":"SECRETVALUE"}}}', { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    let message = '';
    try {
      readTotpEntry(file, 'alice');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/malformed entry/);
    expect(message).not.toContain('SECRETVALUE');
  });
});
