import { describe, expect, it } from 'vitest';
import { compileRules } from '../../../src/policy/access-rules.js';
import { authorizeTarget, type Resolver } from '../../../src/policy/authorize.js';

function resolverOf(table: Record<string, string[]>, calls: string[] = []): Resolver {
  return async (host) => {
    calls.push(host);
    const found = table[host];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

describe('authorizeTarget', () => {
  const rules = compileRules(['db.corp.example:5432', '10.0.0.0/8:22', 'evil.example:80', 'mixed.example:443']);

  it('grants a name rule and returns the checked addresses to connect to', async () => {
    const calls: string[] = [];
    const v = await authorizeTarget('DB.corp.example.:5432', {
      rules,
      resolver: resolverOf({ 'db.corp.example': ['192.0.2.10', '::ffff:192.0.2.11'] }, calls),
    });
    expect(v).toEqual({ allowed: true, host: 'db.corp.example', port: 5432, addresses: ['192.0.2.10', '192.0.2.11'] });
    expect(calls).toEqual(['db.corp.example']);
  });

  it('denies a name that resolves to loopback without an address rule (DNS rebinding)', async () => {
    const v = await authorizeTarget('evil.example:80', { rules, resolver: resolverOf({ 'evil.example': ['127.0.0.1'] }) });
    expect(v).toMatchObject({ allowed: false, code: 'ERR_POLICY_DENIED', reason: 'not-permitted', host: 'evil.example', port: 80, refused: ['127.0.0.1'] });
  });

  it('keeps only the permitted addresses of a name with mixed answers', async () => {
    const v = await authorizeTarget('mixed.example:443', { rules, resolver: resolverOf({ 'mixed.example': ['127.0.0.1', '198.51.100.4', 'fe80::1'] }) });
    expect(v).toEqual({ allowed: true, host: 'mixed.example', port: 443, addresses: ['198.51.100.4'] });
  });

  it('grants by address rule any name resolving into its range', async () => {
    const v = await authorizeTarget('jump.example:22', { rules, resolver: resolverOf({ 'jump.example': ['10.1.2.3'] }) });
    expect(v).toMatchObject({ allowed: true, addresses: ['10.1.2.3'] });
  });

  it('does not resolve when no rule could grant the answer', async () => {
    const calls: string[] = [];
    const v = await authorizeTarget('other.example:5432', { rules, resolver: resolverOf({}, calls) });
    expect(v).toMatchObject({ allowed: false, reason: 'not-permitted' });
    expect(calls).toEqual([]);
  });

  it('checks address targets in every spelling without resolving', async () => {
    const calls: string[] = [];
    const resolver = resolverOf({}, calls);
    expect(await authorizeTarget('0x0a000001:22', { rules, resolver })).toMatchObject({ allowed: true, addresses: ['10.0.0.1'] });
    expect(await authorizeTarget('[::ffff:a00:1]:22', { rules, resolver })).toMatchObject({ allowed: true, addresses: ['10.0.0.1'] });
    expect(await authorizeTarget('127.1:22', { rules, resolver })).toMatchObject({ allowed: false, reason: 'not-permitted' });
    expect(calls).toEqual([]);
  });

  it('reports invalid targets, lookup failures and timeouts as values', async () => {
    expect(await authorizeTarget('nonsense', { rules })).toMatchObject({ allowed: false, code: 'ERR_TARGET_INVALID', reason: 'not-permitted' });
    expect(await authorizeTarget('db.corp.example:5432', { rules, resolver: resolverOf({}) })).toMatchObject({
      allowed: false,
      code: 'ERR_DIAL_DNS',
      reason: 'dns-failure',
    });
    expect(await authorizeTarget('db.corp.example:5432', { rules, resolver: resolverOf({ 'db.corp.example': [] }) })).toMatchObject({
      allowed: false,
      code: 'ERR_DIAL_DNS',
      reason: 'dns-failure',
    });
    const never: Resolver = () => new Promise(() => {});
    expect(await authorizeTarget('db.corp.example:5432', { rules, resolver: never, timeoutMs: 30 })).toMatchObject({
      allowed: false,
      code: 'ERR_DIAL_TIMEOUT',
      reason: 'timeout',
    });
    const ac = new AbortController();
    const pending = authorizeTarget('db.corp.example:5432', { rules, resolver: never, signal: ac.signal });
    ac.abort();
    expect(await pending).toMatchObject({ allowed: false, reason: 'cancel' });
  });

  it("denies the daemon's own addresses", async () => {
    const v = await authorizeTarget('10.0.0.5:22', { rules, localAddresses: ['10.0.0.5'] });
    expect(v).toMatchObject({ allowed: false, reason: 'not-permitted' });
  });
});
