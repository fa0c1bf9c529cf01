import { describe, expect, it } from 'vitest';
import { parseListen, parseListenAddress } from '../../../src/config/listen-address.js';
import { formatHostPort } from '../../../src/lib/host-port.js';

describe('parseListen', () => {
  it.each([
    ['0.0.0.0:8443', '0.0.0.0', 8443],
    ['[::]:8443', '::', 8443],
    ['[fd00::1]:22', 'fd00::1', 22],
    ['localhost:1080', 'localhost', 1080],
    ['db.corp.example:5432', 'db.corp.example', 5432],
    ['127.0.0.1:65535', '127.0.0.1', 65535],
  ])('parses %s', (text, host, port) => {
    expect(parseListen(text)).toEqual({ host, port });
    expect(formatHostPort(host, port)).toBe(text);
  });

  it.each([
    'abc',
    ':80',
    '1.2.3.4',
    '1.2.3.4:',
    '1.2.3.4:65536',
    '1.2.3.4:0',
    '::1:80',
    '[::1]80',
    '[nothost]:80',
    'a b:80',
    'host:+80',
    'host:8a',
    '-bad.example:1',
    '[::1]:',
  ])('refuses %j', (text) => {
    expect(parseListenAddress(text)).toBeUndefined();
    expect(() => parseListen(text)).toThrow(`expected "host:port" (IPv6 as "[::1]:port"), got ${JSON.stringify(text)}`);
  });

  it('accepts port 0 only when asked', () => {
    expect(parseListenAddress('127.0.0.1:0')).toBeUndefined();
    expect(parseListenAddress('127.0.0.1:0', true)).toEqual({ host: '127.0.0.1', port: 0 });
  });
});
