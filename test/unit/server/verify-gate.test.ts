import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../../src/log/audit.js';
import type { StreamRequest } from '../../../src/mux/stream-request.js';
import { compileRules } from '../../../src/policy/access-rules.js';
import { DeviceRules } from '../../../src/policy/device-rules.js';
import type { ServerPeer } from '../../../src/policy/peer-table.js';
import { UNVERIFIED_MESSAGE, VerifyGate, type GateSession } from '../../../src/server/verify-gate.js';
import type { OidcMethod } from '../../../src/verify/verify-method.js';

const binding = new Uint8Array(32).fill(7);
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
const session: GateSession = { fingerprint: 'fp', peerName: 'alice', session: { binding }, log: pino({ level: 'silent' }) };

function peer(verify?: ServerPeer['verify']): ServerPeer {
  return {
    name: 'alice',
    publicKey: new Uint8Array(32),
    kind: 'user',
    rules: compileRules([]),
    devices: new DeviceRules([]),
    reverse: [],
    ...(verify ? { verify } : {}),
  };
}

function request(target: string): StreamRequest & { reject: ReturnType<typeof vi.fn> } {
  return { target, reject: vi.fn() } as unknown as StreamRequest & { reject: ReturnType<typeof vi.fn> };
}

describe('verify gate', () => {
  it('refuses every open of a verify peer with unverified until verified; other peers pass', () => {
    const gate = new VerifyGate({}, () => {});
    const r = request('10.0.0.1:22');
    expect(gate.intercept(session, peer({ method: 'totp', validMs: 1_000 }), r)).toBe(true);
    expect(r.reject).toHaveBeenCalledWith('unverified', UNVERIFIED_MESSAGE);
    expect(gate.intercept(session, peer(), request('10.0.0.1:22'))).toBe(false);
  });

  it('checks version and binding (constant-time compare of the session’s own)', async () => {
    const gate = new VerifyGate({}, () => {});
    const p = peer({ method: 'totp', validMs: 1_000 });
    expect(await gate.answer(session, { method: 'query', binding: b64(binding) }, p)).toMatchObject({ ok: false, error: 'bad-request' });
    expect(await gate.answer(session, { v: 1, method: 'query' }, p)).toMatchObject({ ok: false, error: 'bad-request' });
    const other = new Uint8Array(32).fill(8);
    expect(await gate.answer(session, { v: 1, method: 'query', binding: b64(other) }, p)).toMatchObject({ ok: false, error: 'bad-binding' });
    expect(await gate.answer(session, { v: 1, method: 'query', binding: 'short' }, p)).toMatchObject({ ok: false, error: 'bad-binding' });
    expect(await gate.answer(session, { v: 1, method: 'query', binding: b64(binding) }, p)).toEqual({ ok: true, required: 'totp', verified: false });
    expect(await gate.answer(session, { v: 1, method: 'query', binding: b64(binding) }, peer())).toEqual({ ok: true, required: null, verified: false });
  });

  it('answers not-required to a peer without verify, and oidc-failed when OIDC is not configured', async () => {
    const events: AuditEvent[] = [];
    const gate = new VerifyGate({}, (e) => events.push(e));
    const base = { v: 1, binding: b64(binding) };
    expect(await gate.answer(session, { ...base, method: 'totp', code: '123456' }, peer())).toMatchObject({ ok: false, error: 'not-required' });
    expect(
      await gate.answer(
        session,
        { ...base, method: 'oidc', step: 'begin', redirect_uri: 'http://127.0.0.1:1/callback', code_challenge: 'x' },
        peer({ method: 'oidc', validMs: 1_000 }),
      ),
    ).toEqual({
      ok: false,
      error: 'oidc-failed',
      detail: 'OIDC is not configured on the server',
    });
    expect(events).toContainEqual({ type: 'verification', method: 'oidc', outcome: 'oidc-failed' });
  });

  it('takes the OIDC method’s person, bound to the session, with its groups for rule conditions; unverify forgets it', async () => {
    const now = 1_000_000;
    const oidc: OidcMethod = {
      begin: vi.fn(async () => ({ authorizationUrl: 'https://idp.example/auth', state: 's' })),
      finish: vi.fn(async () => ({ identity: 'alice@corp.example', groups: ['eng'] })),
      forget: vi.fn(),
    };
    const gate = new VerifyGate({ oidc, now: () => now }, () => {});
    const p = peer({ method: 'oidc', validMs: 60_000, identity: 'alice@corp.example' });
    const base = { v: 1, binding: b64(binding), method: 'oidc' };
    expect(await gate.answer(session, { ...base, step: 'begin', redirect_uri: 'http://127.0.0.1:1/callback', code_challenge: 'c' }, p)).toEqual({
      ok: true,
      authorization_url: 'https://idp.example/auth',
      state: 's',
    });
    expect(vi.mocked(oidc.begin).mock.calls[0]![0]).toMatchObject({ peerName: 'alice', fingerprint: 'fp', binding, identity: 'alice@corp.example' });
    const done = await gate.answer(session, { ...base, step: 'finish', state: 's', code: 'c', code_verifier: 'v' }, p);
    expect(done).toEqual({ ok: true, identity: 'alice@corp.example', expires_at: new Date(now + 60_000).toISOString() });
    expect(gate.person('fp')).toEqual({ verifiedAt: 1_000_000, groups: ['eng'] });
    expect(gate.status('fp')).toMatchObject({ method: 'oidc', identity: 'alice@corp.example' });
    gate.sessionEnded(binding);
    expect(oidc.forget).toHaveBeenCalledWith(binding);
    expect(gate.revoke({ identity: 'alice@corp.example' }, [])).toEqual({ keys: ['fp'], dropped: 1 });
    expect(gate.status('fp')).toBeNull();
  });

  it('refuses a signed-in person other than the peer’s identity', async () => {
    const oidc: OidcMethod = { begin: vi.fn(), finish: vi.fn(async () => ({ identity: 'mallory@corp.example', groups: [] })), forget: vi.fn() };
    const gate = new VerifyGate({ oidc }, () => {});
    const answer = await gate.answer(
      session,
      { v: 1, binding: b64(binding), method: 'oidc', step: 'finish', state: 's', code: 'c', code_verifier: 'v' },
      peer({ method: 'oidc', validMs: 1_000, identity: 'alice@corp.example' }),
    );
    expect(answer).toMatchObject({ ok: false, error: 'oidc-failed' });
    expect(gate.status('fp')).toBeNull();
  });
});
