import { describe, expect, it } from 'vitest';
import { compileRules } from '../../../src/policy/access-rules.js';

const NOW = 1_800_000_000_000;
const at = (agoMs: number, groups: string[] = []) => ({ verifiedAt: NOW - agoMs, groups });

describe('access rule conditions (verified<D, group:NAME)', () => {
  const rules = compileRules(['10.0.0.1:22', 'db.corp.example:5432 verified<15m', '10.0.0.2:443 group:eng', '10.0.0.3:443 verified<90s group:eng group:ops']);

  it('a rule without conditions grants whoever; conditional rules need a verified person', () => {
    expect(rules.conditional).toBe(true);
    const none = rules.forPerson(undefined, NOW);
    expect(none.allowsResolved('10.0.0.1', '10.0.0.1', 22)).toBe(true);
    expect(none.namePermitted('db.corp.example', 5432)).toBe(false);
    expect(none.allowsResolved('10.0.0.2', '10.0.0.2', 443)).toBe(false);
  });

  it('verified<D holds for a verification younger than D only', () => {
    expect(rules.forPerson(at(14 * 60_000), NOW).namePermitted('db.corp.example', 5432)).toBe(true);
    expect(rules.forPerson(at(15 * 60_000), NOW).namePermitted('db.corp.example', 5432)).toBe(false);
  });

  it('group:NAME needs the group; every condition of a rule must hold', () => {
    expect(rules.forPerson(at(0, ['eng']), NOW).allowsResolved('10.0.0.2', '10.0.0.2', 443)).toBe(true);
    expect(rules.forPerson(at(0, ['sales']), NOW).allowsResolved('10.0.0.2', '10.0.0.2', 443)).toBe(false);
    expect(rules.forPerson(at(1_000, ['eng', 'ops']), NOW).allowsResolved('10.0.0.3', '10.0.0.3', 443)).toBe(true);
    expect(rules.forPerson(at(1_000, ['eng']), NOW).allowsResolved('10.0.0.3', '10.0.0.3', 443)).toBe(false);
    expect(rules.forPerson(at(91_000, ['eng', 'ops']), NOW).allowsResolved('10.0.0.3', '10.0.0.3', 443)).toBe(false);
  });

  it('rules without conditions are returned as they are; texts keep the conditions', () => {
    const plain = compileRules(['10.0.0.1:22']);
    expect(plain.conditional).toBe(false);
    expect(plain.forPerson(undefined, NOW)).toBe(plain);
    expect(rules.texts[1]).toBe('db.corp.example:5432 verified<15m');
  });

  it.each([
    '10.0.0.1:22 verified<15',
    '10.0.0.1:22 verified<0m',
    '10.0.0.1:22 verified<5d',
    '10.0.0.1:22 group:',
    '10.0.0.1:22 group:a/b',
    '10.0.0.1:22 admin',
    '10.0.0.1:22 verified<1m verified<2m',
  ])('refuses %j', (rule) => {
    expect(() => compileRules([rule])).toThrow(expect.objectContaining({ code: 'ERR_POLICY_BAD_RULE' }));
  });
});
