import { describe, expect, it } from 'vitest';
import { parseProxyV2, PROXY_V2_SIGNATURE } from '../../../src/transport/proxy-protocol.js';
import { TrustedProxies } from '../../../src/transport/trusted-proxies.js';
import { proxyV2Header } from '../../helpers/raw-upgrade.js';

describe('TrustedProxies', () => {
  const trusted = new TrustedProxies(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);

  it('matches addresses and ranges, IPv4-mapped forms included, and refuses bad entries', () => {
    expect(trusted.trusts('127.0.0.1')).toBe(true);
    expect(trusted.trusts('::ffff:10.2.3.4')).toBe(true);
    expect(trusted.trusts('fd12::1')).toBe(true);
    expect(trusted.trusts('127.0.0.2')).toBe(false);
    expect(trusted.trusts('garbage')).toBe(false);
    expect(() => new TrustedProxies(['10.0.0.0/33'])).toThrow(/bad prefix length/);
    expect(() => new TrustedProxies(['proxy.corp'])).toThrow(/expected an IP address or CIDR range/);
  });

  it('takes the rightmost hop that is not a trusted proxy from X-Forwarded-For', () => {
    expect(trusted.clientFromForwardedFor(undefined, '127.0.0.1')).toBe('127.0.0.1');
    expect(trusted.clientFromForwardedFor('192.0.2.1', '127.0.0.1')).toBe('192.0.2.1');
    // A client cannot choose its address by sending its own header: the proxy appends the real one.
    expect(trusted.clientFromForwardedFor('6.6.6.6, 192.0.2.1', '127.0.0.1')).toBe('192.0.2.1');
    expect(trusted.clientFromForwardedFor('192.0.2.1, 10.1.1.1', '127.0.0.1')).toBe('192.0.2.1');
    expect(trusted.clientFromForwardedFor('[2001:db8::1]:443, 192.0.2.8:5000', '127.0.0.1')).toBe('192.0.2.8');
    // A malformed hop ends the walk at the last good one.
    expect(trusted.clientFromForwardedFor('192.0.2.1, \u001b[2Kevil', '127.0.0.1')).toBe('127.0.0.1');
    expect(trusted.clientFromForwardedFor('evil, 10.0.0.5', '127.0.0.1')).toBe('10.0.0.5');
  });
});

describe('parseProxyV2', () => {
  it('reads TCP4 and TCP6 sources at every split point, and refuses what is not a v2 header', () => {
    for (const client of [
      { ip: '192.0.2.1', port: 1234 },
      { ip: '2001:db8:0:0:0:0:0:5', port: 80 },
    ]) {
      const header = proxyV2Header(client);
      for (let cut = 0; cut < header.length; cut++) expect(parseProxyV2(header.subarray(0, cut)).kind).toBe('need-more');
      expect(parseProxyV2(Buffer.concat([header, Buffer.from('GET /')]))).toEqual({ kind: 'done', client, headerBytes: header.length });
    }
    expect(parseProxyV2(Buffer.from('GET / HTTP/1.1\r\n'))).toMatchObject({ kind: 'invalid' });
    expect(parseProxyV2(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'))).toMatchObject({ kind: 'invalid' });
    const local = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
    expect(parseProxyV2(local)).toEqual({ kind: 'done', headerBytes: 16 });
    const huge = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
    expect(parseProxyV2(huge)).toMatchObject({ kind: 'invalid', why: 'PROXY header of 65535 bytes' });
    const v1 = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x11, 0x11, 0x00, 0x0c]), Buffer.alloc(12)]);
    expect(parseProxyV2(v1)).toMatchObject({ kind: 'invalid', why: 'PROXY protocol version 1' });
  });
});
