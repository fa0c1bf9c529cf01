import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inviteIdText, invitePsk } from '../../../src/enroll/invite-token.js';
import {
  CLOSED_INVITE_KEPT_MS,
  MAX_INVITES,
  claimInvite,
  createInvite,
  listInvites,
  lookupInvite,
  revokeInvite,
  type NewInvite,
} from '../../../src/enroll/invites-store.js';
import { useTempDir } from '../../helpers/config-fixture.js';

const temp = useTempDir();
const spec = (name: string, more: Partial<NewInvite> = {}): NewInvite => ({
  name,
  allow: ['db:5432'],
  devices: [],
  approval: false,
  expiresInMs: 3_600_000,
  ...more,
});
const T0 = new Date('2026-12-01T10:00:00Z');
const at = (ms: number): Date => new Date(T0.getTime() + ms);

describe('the invitations file', () => {
  it('is created 0600 and holds the join psk, never the secret', () => {
    const file = path.join(temp(), 'invites.json');
    const { record, id, secret } = createInvite(file, spec('alice', { verify: 'totp', approval: true }), T0);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain(Buffer.from(invitePsk(secret)).toString('base64'));
    expect(text).not.toContain(Buffer.from(secret).toString('base64'));
    expect(text).not.toContain(Buffer.from(secret).toString('base64url'));
    expect(record).toMatchObject({
      id: inviteIdText(id),
      name: 'alice',
      state: 'open',
      approval: true,
      verify: 'totp',
      expiresAt: at(3_600_000).toISOString(),
    });
    const found = lookupInvite(file, id, T0);
    expect(found.ok).toBe(true);
    if (found.ok) expect([...found.invite.psk]).toEqual([...invitePsk(secret)]);
    expect(listInvites(file, T0).map((i) => i.status)).toEqual(['open']);
    expect(JSON.stringify(listInvites(file, T0))).not.toContain('psk');
  });

  it('an invitation is used once: the second claim is refused and its register never runs', () => {
    const file = path.join(temp(), 'invites.json');
    const { record, id } = createInvite(file, spec('alice'), T0);
    const registered: string[] = [];
    const first = claimInvite(file, record.id, 'fp1', (r) => registered.push(r.name), at(1_000));
    const second = claimInvite(file, record.id, 'fp2', (r) => registered.push(r.name), at(2_000));
    expect(first.ok).toBe(true);
    expect(second).toEqual({ ok: false, reason: 'invite-used' });
    expect(registered).toEqual(['alice']);
    expect(lookupInvite(file, id, at(3_000))).toEqual({ ok: false, reason: 'invite-used' });
    expect(listInvites(file, at(3_000))[0]).toMatchObject({ status: 'used', usedBy: 'fp1', usedAt: at(1_000).toISOString() });
  });

  it('a register that throws leaves the invitation open', () => {
    const file = path.join(temp(), 'invites.json');
    const { record } = createInvite(file, spec('alice'), T0);
    expect(() =>
      claimInvite(
        file,
        record.id,
        'fp1',
        () => {
          throw new Error('peers file broken');
        },
        at(1),
      ),
    ).toThrow('peers file broken');
    expect(listInvites(file, at(2))[0]!.status).toBe('open');
    expect(claimInvite(file, record.id, 'fp2', () => 'ok', at(3))).toEqual({ ok: true, value: 'ok' });
  });

  it('expires, and is revoked by id or by name; unknown ids are unknown', () => {
    const file = path.join(temp(), 'invites.json');
    const a = createInvite(file, spec('alice'), T0);
    const b = createInvite(file, spec('bob'), T0);
    const c = createInvite(file, spec('carol'), T0);
    expect(lookupInvite(file, a.id, at(3_600_000))).toEqual({ ok: false, reason: 'invite-expired' });
    expect(claimInvite(file, a.record.id, 'fp', () => 1, at(3_600_000))).toEqual({ ok: false, reason: 'invite-expired' });
    expect(revokeInvite(file, 'bob', at(1)).map((r) => r.id)).toEqual([b.record.id]);
    expect(revokeInvite(file, c.record.id, at(1)).map((r) => r.name)).toEqual(['carol']);
    expect(lookupInvite(file, b.id, at(2))).toEqual({ ok: false, reason: 'invite-revoked' });
    expect(claimInvite(file, c.record.id, 'fp', () => 1, at(2))).toEqual({ ok: false, reason: 'invite-revoked' });
    expect(() => revokeInvite(file, 'bob', at(3))).toThrow(/no open invitation/);
    expect(lookupInvite(file, new Uint8Array(16), at(3))).toEqual({ ok: false, reason: 'invite-unknown' });
    expect(listInvites(file, at(3_600_000)).map((i) => `${i.name}:${i.status}`)).toEqual(['alice:expired', 'bob:revoked', 'carol:revoked']);
  });

  it('one open invitation per name; closed ones are dropped after a week; at most MAX_INVITES', () => {
    const file = path.join(temp(), 'invites.json');
    createInvite(file, spec('alice'), T0);
    expect(() => createInvite(file, spec('alice'), at(1))).toThrow(/open invitation for alice exists already/);
    revokeInvite(file, 'alice', at(2));
    createInvite(file, spec('alice'), at(3));
    expect(listInvites(file, at(4))).toHaveLength(2);
    createInvite(file, spec('bob'), at(CLOSED_INVITE_KEPT_MS + 10));
    expect(listInvites(file, at(CLOSED_INVITE_KEPT_MS + 10)).map((i) => i.name)).toEqual(['alice', 'bob']);
    const shape = JSON.parse(fs.readFileSync(file, 'utf8')) as { invites: unknown[] };
    const one = shape.invites[1]!;
    shape.invites = Array.from({ length: MAX_INVITES }, (_, i) => ({ ...(one as object), name: `p${i}`, id: inviteIdText(new Uint8Array(16).fill(i % 256)) }));
    fs.writeFileSync(file, JSON.stringify(shape), { mode: 0o600 });
    expect(() => createInvite(file, spec('zed'), at(CLOSED_INVITE_KEPT_MS + 20))).toThrow(/1000 invitations already/);
  });

  it('refuses a file readable by others, malformed JSON and malformed entries, without showing content', () => {
    const dir = temp();
    const file = path.join(dir, 'invites.json');
    createInvite(file, spec('alice'), T0);
    fs.chmodSync(file, 0o644);
    expect(() => listInvites(file)).toThrow(/chmod 600/);
    fs.chmodSync(file, 0o600);
    fs.writeFileSync(file, '{"version":1,"invites":[{"id":"x"}]}');
    expect(() => listInvites(file)).toThrow(/invites\[0\]: malformed entry \(content not shown\)/);
    fs.writeFileSync(file, 'secret-looking{');
    const err = (() => {
      try {
        listInvites(file);
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(err).toMatch(/not valid JSON/);
    expect(err).not.toContain('secret-looking');
    expect(() => createInvite(path.join(dir, 'x.json'), spec('a', { expiresInMs: 31 * 86_400_000 }))).toThrow(/at most 30 days/);
  });
});
