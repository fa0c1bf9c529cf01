import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DialError, dialTarget, mapDialErrno } from '../../../src/forward/dial-target.js';
import { compileRules } from '../../../src/policy/access-rules.js';
import type { Resolver } from '../../../src/policy/authorize.js';
import { tcpServer } from '../../helpers/fake-opener.js';
import { refusingPort } from '../../helpers/ports.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function dialError(p: Promise<unknown>): Promise<DialError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DialError);
    return err as DialError;
  }
  throw new Error('dial succeeded');
}

/** A connect that fails at once with `code`, as the kernel would for an unreachable route. */
function failingConnect(code: string): () => net.Socket {
  return () => {
    const socket = new net.Socket();
    queueMicrotask(() => socket.destroy(Object.assign(new Error(`connect ${code}`), { code })));
    return socket;
  };
}

describe('dialTarget', () => {
  const loopback = compileRules(['127.0.0.1:*', 'svc.test:*']);

  it('connects to exactly the address it checked', async () => {
    const { port, close } = await tcpServer((s) => s.end('hi'));
    cleanups.push(close);
    const lookups: string[] = [];
    // The rule lists 127.0.0.1; the name resolves there once, and is never resolved again.
    const resolver: Resolver = async (h) => (lookups.push(h), [{ address: '127.0.0.1', family: 4 }]);
    const d = await dialTarget(`SVC.test:${port}`, { rules: loopback, resolver });
    cleanups.push(() => void d.socket.destroy());
    expect(d).toMatchObject({ host: 'svc.test', address: '127.0.0.1', port });
    expect(d.socket.remoteAddress).toBe('127.0.0.1');
    expect(lookups).toEqual(['svc.test']);
  });

  it('tries the next permitted address when one refuses', async () => {
    const { port, close } = await tcpServer((s) => s.end());
    cleanups.push(close);
    const rules = compileRules(['127.0.0.0/8:*', '[::1]:*', 'svc.test:*']);
    const resolver: Resolver = async () => [
      { address: '127.0.0.2', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ];
    const d = await dialTarget(`svc.test:${port}`, { rules, resolver });
    cleanups.push(() => void d.socket.destroy());
    expect(d.address).toBe('127.0.0.1');
  });

  it('maps policy, refusal, DNS, timeout, unreachable and cancel to codes and reasons', async () => {
    const port = await refusingPort();
    expect(await dialError(dialTarget(`10.0.0.1:${port}`, { rules: loopback }))).toMatchObject({ code: 'ERR_POLICY_DENIED', reason: 'not-permitted' });
    expect(await dialError(dialTarget('junk', { rules: loopback }))).toMatchObject({ code: 'ERR_TARGET_INVALID', reason: 'not-permitted' });
    // A closed port on loopback: the kernel answers RST at once.
    expect(await dialError(dialTarget(`127.0.0.1:${port}`, { rules: loopback }))).toMatchObject({ code: 'ERR_DIAL_REFUSED', reason: 'connection-refused' });
    const nxdomain: Resolver = async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND svc.test'), { code: 'ENOTFOUND' });
    };
    expect(await dialError(dialTarget(`svc.test:${port}`, { rules: loopback, resolver: nxdomain }))).toMatchObject({
      code: 'ERR_DIAL_DNS',
      reason: 'dns-failure',
    });
    const slowDns: Resolver = () => new Promise(() => {});
    expect(await dialError(dialTarget(`svc.test:${port}`, { rules: loopback, resolver: slowDns, timeoutMs: 30 }))).toMatchObject({
      code: 'ERR_DIAL_TIMEOUT',
      reason: 'timeout',
    });
    // A connect that never completes: a socket that is never connected stands in for a silent host.
    const silent = (): net.Socket => new net.Socket();
    expect(await dialError(dialTarget(`127.0.0.1:${port}`, { rules: loopback, timeoutMs: 30, connect: silent }))).toMatchObject({
      code: 'ERR_DIAL_TIMEOUT',
      reason: 'timeout',
    });
    // Unreachable cannot be produced on loopback alone: the kernel's EHOSTUNREACH/ENETUNREACH is injected.
    for (const code of ['EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']) {
      expect(await dialError(dialTarget(`127.0.0.1:${port}`, { rules: loopback, connect: failingConnect(code) }))).toMatchObject({
        code: 'ERR_DIAL_UNREACHABLE',
        reason: 'unreachable',
      });
    }
    const ac = new AbortController();
    const pending = dialTarget(`127.0.0.1:${port}`, { rules: loopback, connect: silent, signal: ac.signal });
    ac.abort();
    expect(await dialError(pending)).toMatchObject({ reason: 'cancel' });
  });

  it('mapDialErrno covers the resolver codes and unknown errors', () => {
    expect(mapDialErrno(Object.assign(new Error('x'), { code: 'EAI_AGAIN' }), 't:1')).toMatchObject({ code: 'ERR_DIAL_DNS', reason: 'dns-failure' });
    expect(mapDialErrno(Object.assign(new Error('x'), { code: 'ENOTFOUND' }), 't:1')).toMatchObject({ reason: 'dns-failure' });
    expect(mapDialErrno(Object.assign(new Error('x'), { code: 'ETIMEDOUT' }), 't:1')).toMatchObject({ reason: 'timeout' });
    expect(mapDialErrno(Object.assign(new Error('x'), { code: 'EPERM' }), 't:1')).toMatchObject({ reason: 'error' });
  });
});
