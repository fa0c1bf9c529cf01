import type os from 'node:os';
import { describe, expect, it } from 'vitest';
import { compileRules } from '../../../src/policy/access-rules.js';
import { mayBePermitted } from '../../../src/policy/authorize.js';
import { OwnAddresses } from '../../../src/policy/own-addresses.js';

const info = (address: string): os.NetworkInterfaceInfo =>
  ({ address, family: address.includes(':') ? 'IPv6' : 'IPv4', internal: false, netmask: '', mac: '', cidr: null }) as unknown as os.NetworkInterfaceInfo;

describe('OwnAddresses', () => {
  it('lists every interface address and the listen address, leaving out the special ranges', () => {
    const own = new OwnAddresses({
      interfaces: () => ({ lo: [info('127.0.0.1'), info('::1')], eth0: [info('10.213.7.1'), info('fe80::1'), info('fd00::7')] }),
    });
    own.setListen(['192.0.2.10']);
    expect([...own.list()].sort()).toEqual(['10.213.7.1', '192.0.2.10', 'fd00::7']);
    // A wildcard listen adds nothing: it is special (and every interface is listed anyway).
    own.setListen(['0.0.0.0']);
    expect([...own.list()].sort()).toEqual(['10.213.7.1', 'fd00::7']);
  });

  it('reads the interfaces again once the list is older than maxAgeMs, and on refresh()', () => {
    let now = 0;
    let addresses = ['10.0.0.1'];
    let reads = 0;
    const own = new OwnAddresses({ interfaces: () => (reads++, { eth0: addresses.map(info) }), maxAgeMs: 1000, now: () => now });
    expect(own.list()).toEqual(['10.0.0.1']);
    addresses = ['10.0.0.2'];
    now = 999;
    expect(own.list()).toEqual(['10.0.0.1']);
    now = 1000;
    expect(own.list()).toEqual(['10.0.0.2']);
    addresses = ['10.0.0.3'];
    own.refresh();
    expect(own.list()).toEqual(['10.0.0.3']);
    expect(reads).toBe(3);
  });

  it('keeps the last list when reading the interfaces fails', () => {
    let fail = false;
    const own = new OwnAddresses({
      interfaces: () => {
        if (fail) throw new Error('EMFILE');
        return { eth0: [info('10.0.0.1')] };
      },
      maxAgeMs: 0,
    });
    expect(own.list()).toEqual(['10.0.0.1']);
    fail = true;
    expect(own.list()).toEqual(['10.0.0.1']);
  });

  it('a broad rule does not reach an own address; a rule naming it exactly does', () => {
    const own = ['10.213.7.1'];
    const broad = compileRules(['10.0.0.0/8:22']);
    expect(broad.allowsResolved('10.213.7.1', '10.213.7.1', 22, own)).toBe(false);
    expect(broad.allowsResolved('10.213.7.2', '10.213.7.2', 22, own)).toBe(true);
    expect(compileRules(['10.213.7.1:22']).allowsResolved('10.213.7.1', '10.213.7.1', 22, own)).toBe(true);
  });
});

describe('mayBePermitted (the check before a dial slot, and on reload for pending opens)', () => {
  const rules = compileRules(['10.0.0.0/8:22', 'db.corp.example:5432']);
  it('decides address targets in full, with own addresses', () => {
    expect(mayBePermitted('10.1.2.3:22', rules)).toBe(true);
    expect(mayBePermitted('10.1.2.3:23', rules)).toBe(false);
    expect(mayBePermitted('10.213.7.1:22', rules, ['10.213.7.1'])).toBe(false);
    expect(mayBePermitted('[::ffff:10.1.2.3]:22', rules)).toBe(true);
  });
  it('lets a name through only while some rule could grant what it resolves to', () => {
    expect(mayBePermitted('db.corp.example:5432', rules)).toBe(true);
    expect(mayBePermitted('other.example:22', rules)).toBe(true); // an address rule on port 22
    expect(mayBePermitted('other.example:5432', rules)).toBe(false);
    expect(mayBePermitted('db.corp.example:5432', compileRules(['10.0.0.0/8:22']))).toBe(false);
  });
  it('refuses what does not parse', () => {
    expect(mayBePermitted('no-port', rules)).toBe(false);
    expect(mayBePermitted('', rules)).toBe(false);
  });
});
