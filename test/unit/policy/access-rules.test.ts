import { describe, expect, it } from 'vitest';
import { ForwardError, hasCode } from '../../../src/errors.js';
import { compileRules, isSpecialAddress } from '../../../src/policy/access-rules.js';

function check(rules: string[], host: string, port: number, address = host, local: string[] = []): boolean {
  return compileRules(rules).allowsResolved(host, address, port, local);
}

describe('compileRules: syntax', () => {
  it.each([
    'db.corp.example:5432',
    'DB.Corp.Example.:5432',
    '10.0.0.5:22',
    '10.0.0.0/8:22,443',
    '10.0.0.0/8:8000-8100',
    '10.0.0.0/8:22,8000-8100,9000',
    '0.0.0.0/0:*',
    '[fd00::5]:22',
    '[fd00::/8]:*',
    '[::ffff:10.0.0.0/104]:22',
    '[64:ff9b::/96]:80',
    '[2002::/48]:80',
    '127.1:80',
    '0x7f000001/32:80',
    '  host.example:1  ',
    '10.0.0.0/0:1-65535',
  ])('accepts %j', (rule) => {
    expect(compileRules([rule]).texts).toEqual([rule.trim()]);
  });

  it.each([
    ['', /empty rule/],
    ['   ', /empty rule/],
    ['host.example', /expected HOST:PORTS/],
    ['host.example:', /bad port list/],
    [':22', /expected HOST:PORTS/],
    ['host.example:0', /outside 1-65535/],
    ['host.example:65536', /outside 1-65535/],
    ['host.example:100-10', /reversed/],
    ['host.example:22,', /bad port list/],
    ['host.example:22;23', /bad port list/],
    ['host.example:**', /bad port list/],
    ['*.example.com:22', /wildcards/],
    ['host*:22', /wildcards/],
    ['~^[a-z]+$:22', /not a host name/],
    ['10.0.0.0/33:22', /prefix length/],
    ['10.0.0.0/-1:22', /prefix length/],
    ['[fd00::/129]:22', /prefix length/],
    ['host.example/8:22', /cannot take a prefix length/],
    ['fd00::/8:22', /brackets/],
    ['[fd00::/8:22', /expected \[IPv6/],
    ['[nothing]:22', /not an IPv6 address/],
    ['1.2.3.256:22', /not a host name/],
    ['[::ffff:0:0/64]:22', /ambiguous/],
    ['[2002::/8]:22', /ambiguous/],
    ['bad_host!:22', /not a host name/],
  ])('rejects %j with ERR_POLICY_BAD_RULE naming the rule', (rule, why) => {
    let caught: unknown;
    try {
      compileRules(['ok.example:22', rule]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ForwardError);
    expect(hasCode(caught, 'ERR_POLICY_BAD_RULE')).toBe(true);
    expect((caught as Error).message).toContain(JSON.stringify(rule.trim() === '' ? rule : rule.trim()));
    expect((caught as Error).message).toMatch(why);
  });
});

describe('AccessRules: decisions', () => {
  it('denies by default', () => {
    expect(compileRules([]).empty).toBe(true);
    expect(check([], '10.0.0.1', 22)).toBe(false);
  });

  it('matches addresses, ranges and port lists', () => {
    const rules = ['10.0.0.0/8:22,8000-8100', '192.168.1.7:443', '[fd00::/8]:*'];
    expect(check(rules, '10.200.3.4', 22)).toBe(true);
    expect(check(rules, '10.200.3.4', 8050)).toBe(true);
    expect(check(rules, '10.200.3.4', 8101)).toBe(false);
    expect(check(rules, '10.200.3.4', 23)).toBe(false);
    expect(check(rules, '11.0.0.1', 22)).toBe(false);
    expect(check(rules, '192.168.1.7', 443)).toBe(true);
    expect(check(rules, '192.168.1.8', 443)).toBe(false);
    expect(check(rules, 'fd12::1', 9)).toBe(true);
    expect(check(rules, 'fe00::1', 9)).toBe(false);
  });

  it('IPv6 rules over embedded IPv4 fold to the IPv4 range they reach', () => {
    expect(check(['[::ffff:10.0.0.0/104]:22'], '10.9.9.9', 22)).toBe(true);
    expect(check(['[::ffff:10.0.0.0/104]:22'], '11.9.9.9', 22)).toBe(false);
    expect(check(['[2002:a00::/24]:22'], '10.9.9.9', 22)).toBe(true);
    expect(check(['[64:ff9b::/96]:80'], '8.8.8.8', 80)).toBe(true);
  });

  describe('special ranges are denied unless listed exactly', () => {
    const broad = ['0.0.0.0/0:*', '[::/0]:*'];
    it.each([
      '0.0.0.0',
      '0.1.2.3',
      '127.0.0.1',
      '127.255.255.254',
      '169.254.169.254',
      '224.0.0.1',
      '239.1.1.1',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'ff02::1',
    ])('%s: a broad rule does not grant it', (address) => {
      expect(isSpecialAddress(address)).toBe(true);
      expect(check(broad, address, 80)).toBe(false);
    });

    it('a rule inside the special range grants it', () => {
      expect(check(['127.0.0.1:8080'], '127.0.0.1', 8080)).toBe(true);
      expect(check(['127.0.0.1:8080'], '127.0.0.1', 8081)).toBe(false);
      expect(check(['127.0.0.1:8080'], '127.0.0.2', 8080)).toBe(false);
      expect(check(['127.0.0.0/8:*'], '127.3.2.1', 1)).toBe(true);
      expect(check(['[::1]:22'], '::1', 22)).toBe(true);
      expect(check(['169.254.169.254:80'], '169.254.169.254', 80)).toBe(true);
      expect(check(['[fe80::/10]:*'], 'fe80::9', 22)).toBe(true);
    });

    it('a rule merely overlapping the special range does not', () => {
      expect(check(['0.0.0.0/1:*'], '127.0.0.1', 80)).toBe(false);
      expect(check(['126.0.0.0/7:*'], '127.0.0.1', 80)).toBe(false);
      expect(check(['126.0.0.0/7:*'], '126.0.0.1', 80)).toBe(true);
    });

    it('legacy and mapped spellings of a rule still count as listing it', () => {
      expect(check(['0x7f000001:80'], '127.0.0.1', 80)).toBe(true);
      expect(check(['[::ffff:127.0.0.1]:80'], '127.0.0.1', 80)).toBe(true);
    });

    it("the daemon's own addresses need a rule naming exactly that address", () => {
      const local = ['10.0.0.5', 'fd00::1'];
      expect(check(['10.0.0.0/8:*'], '10.0.0.5', 22, '10.0.0.5', local)).toBe(false);
      expect(check(['10.0.0.0/8:*'], '10.0.0.6', 22, '10.0.0.6', local)).toBe(true);
      expect(check(['10.0.0.5:22'], '10.0.0.5', 22, '10.0.0.5', local)).toBe(true);
      expect(check(['[fd00::/8]:*'], 'fd00::1', 22, 'fd00::1', local)).toBe(false);
      expect(check(['[fd00::1]:22'], 'fd00::1', 22, 'fd00::1', local)).toBe(true);
      // A mapped spelling of the own address is the same address.
      expect(check(['10.0.0.0/8:*'], '10.0.0.5', 22, '::ffff:10.0.0.5', local)).toBe(false);
    });
  });

  describe('name rules', () => {
    const rules = ['db.corp.example:5432'];
    it('grant the exact normalised name on its ports, resolving anywhere ordinary', () => {
      expect(compileRules(['DB.corp.example.:5432']).namePermitted('db.corp.example', 5432)).toBe(true);
      expect(check(rules, 'db.corp.example', 5432, '10.1.1.1')).toBe(true);
      expect(check(rules, 'db.corp.example', 5433, '10.1.1.1')).toBe(false);
      expect(check(rules, 'x.db.corp.example', 5432, '10.1.1.1')).toBe(false);
      expect(check(rules, 'corp.example', 5432, '10.1.1.1')).toBe(false);
    });

    it('do not grant a special address the name resolves to (DNS rebinding)', () => {
      expect(check(rules, 'db.corp.example', 5432, '127.0.0.1')).toBe(false);
      expect(check(rules, 'db.corp.example', 5432, '::ffff:127.0.0.1')).toBe(false);
      expect(check(rules, 'db.corp.example', 5432, '169.254.169.254')).toBe(false);
      expect(check(rules, 'db.corp.example', 5432, '10.0.0.5', ['10.0.0.5'])).toBe(false);
      // ...unless an address rule lists it.
      expect(check([...rules, '127.0.0.1:5432'], 'db.corp.example', 5432, '127.0.0.1')).toBe(true);
    });

    it('do not grant the address itself', () => {
      expect(check(rules, '10.1.1.1', 5432, '10.1.1.1')).toBe(false);
    });

    it('mayResolve says when a lookup could matter', () => {
      const r = compileRules(['db.corp.example:5432', '10.0.0.0/8:22']);
      expect(r.mayResolve('db.corp.example', 5432)).toBe(true);
      expect(r.mayResolve('other.example', 22)).toBe(true);
      expect(r.mayResolve('other.example', 5432)).toBe(false);
      expect(r.portMentioned(80)).toBe(false);
    });
  });
});
