import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CloseReason } from '../../../src/channel.js';
import { encodeKey, fingerprint, generateKeyPair } from '../../../src/crypto/keys.js';
import { createInvite, listInvites, type NewInvite } from '../../../src/enroll/invites-store.js';
import { JOIN_EXCHANGE_TIMEOUT_MS, JoinService, type JoinAnswer } from '../../../src/enroll/join-server.js';
import { loadPeers } from '../../../src/config/peers.js';
import type { SecureSession } from '../../../src/session/secure-session.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { useTempDir } from '../../helpers/config-fixture.js';

const temp = useTempDir();
afterEach(() => vi.useRealTimers());

/** The few SecureSession members the join exchange uses, recording what it sent and how it closed. */
function fakeSession(): { session: SecureSession; sent: JoinAnswer[]; closed: CloseReason[]; deliver: (text: string) => void; publicKey: Uint8Array } {
  const keys = generateKeyPair();
  const sent: JoinAnswer[] = [];
  const closed: CloseReason[] = [];
  let onMessage: (m: Uint8Array) => void = () => {};
  const session = {
    peerPublicKey: keys.publicKey,
    remoteAddress: '192.0.2.7:5000',
    send: (m: Uint8Array) => sent.push(JSON.parse(new TextDecoder().decode(m)) as JoinAnswer) > 0,
    onMessage: (h: (m: Uint8Array) => void) => (onMessage = h),
    onClose: () => {},
    close: (r: CloseReason) => void closed.push(r),
  } as unknown as SecureSession;
  return { session, sent, closed, deliver: (text) => onMessage(new TextEncoder().encode(text)), publicKey: keys.publicKey };
}

function setUp(spec: Partial<NewInvite> = {}, enrolTotp?: (name: string) => string) {
  const dir = temp();
  const invitesFile = path.join(dir, 'invites.json');
  const peersFile = path.join(dir, 'peers.toml');
  const { record, id } = createInvite(invitesFile, {
    name: 'alice',
    allow: ['db:5432'],
    devices: ['build1:ssh'],
    approval: false,
    expiresInMs: 60_000,
    ...spec,
  });
  const reloads: string[] = [];
  const { logger, lines } = captureLogger();
  const service = new JoinService({ invitesFile, peersFile, logger, reload: (t) => reloads.push(t), ...(enrolTotp ? { enrolTotp } : {}) });
  return { service, record, id, invitesFile, peersFile, reloads, lines };
}

describe('the join exchange (server side)', () => {
  it('registers the key with the invitation rules, reloads, answers once and closes', () => {
    const s = setUp({ approval: true });
    const found = s.service.lookupJoin(s.id);
    expect('invite' in found && found.invite.name).toBe('alice');
    const f = fakeSession();
    s.service.serve(f.session, { id: s.record.id, name: 'alice' });
    f.deliver('{"v":1,"hostname":"laptop\\u001b[2K"}');
    expect(f.sent).toEqual([{ ok: true, name: 'alice', pending: true }]);
    expect(f.closed.map((c) => c.code)).toEqual(['normal']);
    expect(s.reloads).toEqual(['join']);
    const peer = loadPeers(s.peersFile).peers[0]!;
    expect(peer).toMatchObject({ name: 'alice', publicKey: encodeKey(f.publicKey), allow: ['db:5432'], devices: ['build1:ssh'], kind: 'user', pending: true });
    expect(listInvites(s.invitesFile)[0]).toMatchObject({ status: 'used', usedBy: fingerprint(f.publicKey) });
    const line = s.lines.find((l) => l.event === 'join.accepted')!;
    expect(line).toMatchObject({ peer: 'alice', invite: s.record.id, pending: true, hostname: 'laptop\\x1b[2K' });
    // A second message on the same session changes nothing.
    f.deliver('{"v":1,"hostname":"again"}');
    expect(f.sent).toHaveLength(1);
    expect(s.service.lookupJoin(s.id)).toEqual({ refused: 'invite-used' });
  });

  it.each([
    ['not JSON', 'hello', 'request is not UTF-8 JSON'],
    ['an array', '[1]', 'request is not a JSON object'],
    ['another version', '{"v":2,"hostname":"h"}', 'request version 2, expected 1'],
    ['a long host name', `{"v":1,"hostname":"${'h'.repeat(256)}"}`, 'hostname: expected a string of at most 255 characters'],
    ['too long', `{"v":1,"hostname":"h","x":"${'x'.repeat(5000)}"}`, 'request longer than 4096 bytes'],
  ])('refuses a request that is %s, registering nothing and leaving the invitation open', (_what, text, detail) => {
    const s = setUp();
    const f = fakeSession();
    s.service.serve(f.session, { id: s.record.id, name: 'alice' });
    f.deliver(text);
    expect(f.sent).toEqual([{ ok: false, error: 'bad-request', detail }]);
    expect(fs.existsSync(s.peersFile)).toBe(false);
    expect(listInvites(s.invitesFile)[0]!.status).toBe('open');
    expect(s.lines.find((l) => l.event === 'join.refused')).toMatchObject({ reason: 'bad-request' });
  });

  it('answers bad-request when no request comes within the exchange timeout', () => {
    vi.useFakeTimers();
    const s = setUp();
    const f = fakeSession();
    s.service.serve(f.session, { id: s.record.id, name: 'alice' });
    vi.advanceTimersByTime(JOIN_EXCHANGE_TIMEOUT_MS + 1);
    expect(f.sent).toEqual([{ ok: false, error: 'bad-request', detail: `no join request within ${JOIN_EXCHANGE_TIMEOUT_MS} ms` }]);
    expect(f.closed).toHaveLength(1);
  });

  it('a TOTP invitation enrols the secret through the hook and returns its URI; a failing hook registers nothing', () => {
    const s = setUp({ verify: 'totp' }, (name) => `otpauth://totp/twoway:${name}?secret=ABC`);
    const f = fakeSession();
    s.service.serve(f.session, { id: s.record.id, name: 'alice' });
    f.deliver('{"v":1,"hostname":"h"}');
    expect(f.sent).toEqual([{ ok: true, name: 'alice', pending: false, verify: 'totp', totp_uri: 'otpauth://totp/twoway:alice?secret=ABC' }]);
    expect(JSON.stringify(s.lines)).not.toContain('secret=ABC');

    const broken = setUp({ verify: 'totp' }, () => {
      throw new Error('totp.json: EACCES');
    });
    const g = fakeSession();
    broken.service.serve(g.session, { id: broken.record.id, name: 'alice' });
    g.deliver('{"v":1,"hostname":"h"}');
    expect(g.sent[0]).toMatchObject({ ok: false, error: 'server-error' });
    expect(fs.existsSync(broken.peersFile)).toBe(false);
    expect(listInvites(broken.invitesFile)[0]!.status).toBe('open');
  });

  it('the invitations file unreadable: every join is refused as unknown, and the log says why', () => {
    const s = setUp();
    fs.chmodSync(s.invitesFile, 0o644);
    expect(s.service.lookupJoin(s.id)).toEqual({ refused: 'invite-unknown' });
    expect(s.lines.find((l) => l.event === 'join.refused')).toMatchObject({ reason: 'server-error' });
  });
});
