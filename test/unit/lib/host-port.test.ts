import { describe, expect, it } from 'vitest';
import { formatHostPort, parsePortNumber, splitHostPort } from '../../../src/lib/host-port.js';

describe('splitHostPort', () => {
  it.each([
    ['0.0.0.0:8443', '0.0.0.0', '8443', false],
    ['[::]:8443', '::', '8443', true],
    ['[fd00::/8]:22', 'fd00::/8', '22', true],
    ['localhost:1080', 'localhost', '1080', false],
    ['host:', 'host', '', false],
    ['[::1]:', '::1', '', true],
  ])('cuts %s', (text, host, port, bracketed) => {
    expect(splitHostPort(text)).toEqual({ ok: true, host, port, bracketed });
  });

  it.each([
    ['[::1', 'unclosed-bracket'],
    ['[::1]80', 'unclosed-bracket'],
    ['abc', 'no-port'],
    [':80', 'no-port'],
    ['::1:80', 'unbracketed-ipv6'],
    ['fd00::1:22', 'unbracketed-ipv6'],
  ])('refuses %j (%s)', (text, problem) => {
    expect(splitHostPort(text)).toEqual({ ok: false, problem });
  });
});

describe('parsePortNumber', () => {
  it('accepts 1-65535 in decimal digits, and 0 only when asked', () => {
    expect(parsePortNumber('1')).toBe(1);
    expect(parsePortNumber('65535')).toBe(65535);
    expect(parsePortNumber('0')).toBeUndefined();
    expect(parsePortNumber('0', true)).toBe(0);
    for (const bad of ['65536', '', '+80', '8a', ' 80', '0x50', '123456']) expect(parsePortNumber(bad), bad).toBeUndefined();
  });
});

describe('formatHostPort', () => {
  it('brackets IPv6 literals, once', () => {
    expect(formatHostPort('::1', 22)).toBe('[::1]:22');
    expect(formatHostPort('fd00::1', 0)).toBe('[fd00::1]:0');
    expect(formatHostPort('[::1]', 22)).toBe('[::1]:22');
    expect(formatHostPort('127.0.0.1', 8443)).toBe('127.0.0.1:8443');
    expect(formatHostPort('a.example', 22)).toBe('a.example:22');
  });

  it('round-trips through splitHostPort', () => {
    for (const [host, port] of [
      ['::', 8443],
      ['10.0.0.1', 1],
      ['db.corp.example', 5432],
    ] as const) {
      const split = splitHostPort(formatHostPort(host, port));
      expect(split).toEqual({ ok: true, host, port: String(port), bracketed: host.includes(':') });
    }
  });
});
