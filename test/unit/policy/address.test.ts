import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/errors.js';
import { canonicalIPv6, embeddedIPv4, normalizeHost, parseLegacyIPv4, parseTarget } from '../../../src/policy/address.js';

describe('parseTarget: every spelling normalised', () => {
  const table: Array<[string, string, number, 0 | 4 | 6]> = [
    ['example.com:22', 'example.com', 22, 0],
    ['Example.COM.:443', 'example.com', 443, 0],
    ['db_1.corp-x.example:5432', 'db_1.corp-x.example', 5432, 0],
    ['localhost:65535', 'localhost', 65535, 0],
    ['127.0.0.1:1', '127.0.0.1', 1, 4],
    ['127.1:80', '127.0.0.1', 80, 4],
    ['0x7f.1:80', '127.0.0.1', 80, 4],
    ['0177.0.0.1:80', '127.0.0.1', 80, 4],
    ['2130706433:80', '127.0.0.1', 80, 4],
    ['0x7f000001:80', '127.0.0.1', 80, 4],
    ['0X7F.0.0.01:80', '127.0.0.1', 80, 4],
    ['10.1.258:80', '10.1.1.2', 80, 4],
    ['0:80', '0.0.0.0', 80, 4],
    ['0.0.0.0:80', '0.0.0.0', 80, 4],
    ['[::1]:22', '::1', 22, 6],
    ['[0:0:0:0:0:0:0:1]:22', '::1', 22, 6],
    ['[FD00:0:0:0::5]:22', 'fd00::5', 22, 6],
    ['[2001:db8:0:0:1:0:0:1]:22', '2001:db8::1:0:0:1', 22, 6],
    ['[::]:22', '::', 22, 6],
    ['[::ffff:127.0.0.1]:22', '127.0.0.1', 22, 4],
    ['[::ffff:7f00:1]:22', '127.0.0.1', 22, 4],
    ['[64:ff9b::7f00:1]:22', '127.0.0.1', 22, 4],
    ['[64:ff9b::10.0.0.1]:22', '10.0.0.1', 22, 4],
    ['[2002:7f00:1::]:22', '127.0.0.1', 22, 4],
    ['[2002:a00:1:1::1]:22', '10.0.0.1', 22, 4],
    ['[::127.0.0.1]:22', '127.0.0.1', 22, 4],
  ];
  it.each(table)('%s -> %s port %d', (text, host, port, family) => {
    expect(parseTarget(text)).toEqual({ host, port, family });
  });

  const invalid = [
    '',
    ':',
    'example.com',
    'example.com:',
    ':22',
    'example.com:0',
    'example.com:65536',
    'example.com:99999999',
    'example.com:-1',
    'example.com:22a',
    'example.com: 22',
    'example.com:0x16',
    ' example.com:22',
    'exa mple.com:22',
    'ex!ample.com:22',
    '-bad.example:22',
    'bad-.example:22',
    'a..b:22',
    '.:22',
    '..:22',
    `${'a'.repeat(64)}.com:22`,
    `${'a.'.repeat(130)}com:22`,
    '::1:22',
    '[::1:22',
    '[::1]22',
    '[::1]:',
    '[example.com]:22',
    '[::1%lo]:22',
    '[fe80::1%eth0]:22',
    '1.2.3.256:22',
    '256.1.1.1:22',
    '1.2.3.4.5:22',
    '4294967296:22',
    '0x100000000:22',
    '08.0.0.1:22',
    '1.2.3.0x:22x',
    'http://example.com:22',
    'user@example.com:22',
    'example.com:22/x',
    'é.example:22',
    'x'.repeat(400),
  ];
  it.each(invalid)('rejects %j with ERR_TARGET_INVALID', (text) => {
    let caught: unknown;
    try {
      parseTarget(text);
    } catch (err) {
      caught = err;
    }
    expect(hasCode(caught, 'ERR_TARGET_INVALID')).toBe(true);
  });
});

describe('address helpers', () => {
  it('parseLegacyIPv4 agrees with inet_aton forms and refuses junk', () => {
    expect(parseLegacyIPv4('1')).toBe('0.0.0.1');
    expect(parseLegacyIPv4('1.2')).toBe('1.0.0.2');
    expect(parseLegacyIPv4('1.2.3')).toBe('1.2.0.3');
    expect(parseLegacyIPv4('255.255.255.255')).toBe('255.255.255.255');
    expect(parseLegacyIPv4('4294967295')).toBe('255.255.255.255');
    expect(parseLegacyIPv4('1.16777216')).toBeUndefined();
    expect(parseLegacyIPv4('09')).toBeUndefined();
    expect(parseLegacyIPv4('a.b.c.d')).toBeUndefined();
    expect(parseLegacyIPv4('1..2')).toBeUndefined();
  });

  it('canonicalIPv6 follows RFC 5952 (lower case, longest zero run, first on a tie)', () => {
    expect(canonicalIPv6('2001:DB8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalIPv6('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(canonicalIPv6('0:0:0:0:0:0:0:0')).toBe('::');
    expect(canonicalIPv6('fe80:0000:0000:0000:0000:0000:0000:0001')).toBe('fe80::1');
  });

  it('embeddedIPv4 maps the IPv4-reaching forms and nothing else', () => {
    expect(embeddedIPv4('::ffff:192.168.1.1')).toBe('192.168.1.1');
    expect(embeddedIPv4('64:ff9b::c0a8:101')).toBe('192.168.1.1');
    expect(embeddedIPv4('2002:c0a8:101::')).toBe('192.168.1.1');
    expect(embeddedIPv4('::1')).toBeUndefined();
    expect(embeddedIPv4('::')).toBeUndefined();
    expect(embeddedIPv4('fd00::1')).toBeUndefined();
    expect(embeddedIPv4('64:ff9b:1::1')).toBeUndefined();
  });

  it('normalizeHost never trims or accepts a bracketed name', () => {
    expect(() => normalizeHost(' a.example')).toThrow(/not a valid host name/);
    expect(() => normalizeHost('[a.example]')).toThrow(/brackets/);
    expect(normalizeHost('[::1]')).toEqual({ host: '::1', family: 6 });
  });
});
