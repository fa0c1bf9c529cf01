import { randomBytes } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { describe, expect, it } from 'vitest';
import {
  DAMAGED_TOKEN,
  INVITE_TOKEN_PREFIX,
  MAX_INVITE_TOKEN_CHARS,
  MAX_INVITE_URL_BYTES,
  decodeInviteToken,
  encodeInviteToken,
  invitePsk,
  inviteIdText,
  type InviteToken,
} from '../../../src/enroll/invite-token.js';

const sample = (url = 'wss://vpn.corp.example/twoway'): InviteToken => ({
  id: new Uint8Array(randomBytes(16)),
  secret: new Uint8Array(randomBytes(32)),
  serverPublicKey: new Uint8Array(randomBytes(32)),
  url,
});

const code = (fn: () => unknown): { code?: string; message: string } => {
  try {
    fn();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a throw');
};

/** The payload bytes of a token, and a token made of given payload bytes. */
const bytesOf = (token: string): Uint8Array => new Uint8Array(Buffer.from(token.slice(INVITE_TOKEN_PREFIX.length), 'base64url'));
const tokenOf = (bytes: Uint8Array): string => INVITE_TOKEN_PREFIX + Buffer.from(bytes).toString('base64url');
/** Re-seals a payload's check after a change (what a deliberate forger would do). */
const reseal = (bytes: Uint8Array): Uint8Array => {
  const out = bytes.slice();
  out.set(blake2s(out.subarray(0, out.length - 4)).subarray(0, 4), out.length - 4);
  return out;
};

describe('invitation tokens', () => {
  it('round-trip every field, with the documented layout', () => {
    const t = sample('ws://127.0.0.1:8443/twoway');
    const text = encodeInviteToken(t);
    expect(text.startsWith('twoway-invite:')).toBe(true);
    const bytes = bytesOf(text);
    expect(bytes[0]).toBe(1);
    expect([...bytes.subarray(1, 17)]).toEqual([...t.id]);
    expect([...bytes.subarray(17, 49)]).toEqual([...t.secret]);
    expect([...bytes.subarray(49, 81)]).toEqual([...t.serverPublicKey]);
    expect((bytes[81]! << 8) | bytes[82]!).toBe(t.url.length);
    expect(Buffer.from(bytes.subarray(83, 83 + t.url.length)).toString()).toBe(t.url);
    expect(bytes.length).toBe(83 + t.url.length + 4);
    expect([...bytes.subarray(-4)]).toEqual([...blake2s(bytes.subarray(0, -4)).subarray(0, 4)]);
    const back = decodeInviteToken(`  ${text}\n`);
    expect([...back.id]).toEqual([...t.id]);
    expect([...back.secret]).toEqual([...t.secret]);
    expect([...back.serverPublicKey]).toEqual([...t.serverPublicKey]);
    expect(back.url).toBe(t.url);
  });

  it('a token cut short, a character changed, or anything appended is damaged (exit-3 code, no byte shown)', () => {
    const text = encodeInviteToken(sample());
    const cases = [
      text.slice(0, -1),
      text.slice(0, -6),
      text.slice(0, 40),
      `${text}A`,
      `${text}AAAA`,
      text.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
      text.slice(0, 30) + (text[30] === 'x' ? 'y' : 'x') + text.slice(31),
      text.replace('twoway-invite:', 'twoway-invite'),
      text.replace('twoway-invite:', 'twoway-invit3:'),
      text.replace(/-/g, '+'),
      `${text}=`,
      '',
      'twoway-invite:',
      'x'.repeat(MAX_INVITE_TOKEN_CHARS + 1),
    ];
    for (const bad of cases) {
      const err = code(() => decodeInviteToken(bad));
      expect(err.code, bad).toBe('ERR_INVITE_TOKEN');
      expect(err.message.startsWith(DAMAGED_TOKEN)).toBe(true);
      expect(err.message).not.toContain(text.slice(INVITE_TOKEN_PREFIX.length, INVITE_TOKEN_PREFIX.length + 12));
    }
  });

  it('every single-bit flip of the payload is caught', () => {
    const bytes = bytesOf(encodeInviteToken(sample()));
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const flipped = bytes.slice();
        flipped[i]! ^= 1 << bit;
        expect(code(() => decodeInviteToken(tokenOf(flipped))).code).toBe('ERR_INVITE_TOKEN');
      }
    }
  });

  it('refuses a resealed token with another version, a wrong URL length or a URL that is not ws(s)://', () => {
    const bytes = bytesOf(encodeInviteToken(sample('ws://h/x')));
    const v2 = bytes.slice();
    v2[0] = 2;
    expect(code(() => decodeInviteToken(tokenOf(reseal(v2)))).message).toMatch(/version 2/);
    const longer = bytes.slice();
    longer[82]! += 1;
    expect(code(() => decodeInviteToken(tokenOf(reseal(longer)))).message).toMatch(/wrong length/);
    const http = bytes.slice();
    http.set(Buffer.from('wx'), 83);
    expect(code(() => decodeInviteToken(tokenOf(reseal(http)))).message).toMatch(/not a ws:\/\/ or wss:\/\/ URL/);
    const notUtf8 = bytes.slice();
    notUtf8[87] = 0xff;
    expect(code(() => decodeInviteToken(tokenOf(reseal(notUtf8)))).message).toMatch(/not UTF-8/);
  });

  it('encodes only exact fields and a ws(s) URL within the bound', () => {
    expect(() => encodeInviteToken({ ...sample(), id: new Uint8Array(15) })).toThrow(RangeError);
    expect(() => encodeInviteToken({ ...sample(), secret: new Uint8Array(31) })).toThrow(RangeError);
    expect(() => encodeInviteToken({ ...sample(), serverPublicKey: new Uint8Array(33) })).toThrow(RangeError);
    expect(() => encodeInviteToken(sample('https://vpn.corp.example/'))).toThrow(RangeError);
    expect(() => encodeInviteToken(sample('wss://user:pw@vpn.corp.example/'))).toThrow(RangeError);
    expect(() => encodeInviteToken(sample(`wss://h/${'a'.repeat(MAX_INVITE_URL_BYTES)}`))).toThrow(RangeError);
    const longest = encodeInviteToken(sample(`wss://h/${'a'.repeat(MAX_INVITE_URL_BYTES - 8)}`));
    expect(longest.length).toBeLessThanOrEqual(MAX_INVITE_TOKEN_CHARS);
    expect(decodeInviteToken(longest).url.length).toBe(MAX_INVITE_URL_BYTES);
  });

  it('derives the join psk as keyed BLAKE2s of the label, different per secret', () => {
    const secret = new Uint8Array(randomBytes(32));
    const psk = invitePsk(secret);
    expect([...psk]).toEqual([...blake2s(new TextEncoder().encode('twoway invite psk v1'), { key: secret, dkLen: 32 })]);
    expect(psk).toHaveLength(32);
    expect([...psk]).not.toEqual([...invitePsk(new Uint8Array(randomBytes(32)))]);
    expect([...psk]).not.toEqual([...secret]);
    expect(() => invitePsk(new Uint8Array(16))).toThrow(RangeError);
    expect(inviteIdText(new Uint8Array(16))).toBe('AAAAAAAAAAAAAAAAAAAAAA');
  });
});
