/**
 * Enrollment by invitation through the real bin/twoway: `twoway invite` on the server, `twoway
 * join` on a second "machine" (another HOME with no XDG_CONFIG_HOME and, as root, another uid
 * through setpriv), `twoway peers approve`, then a real stream through the tunnel with the files
 * join wrote. Expired, reused, revoked, unknown and tampered tokens are refused with a clear
 * message, exit 3 or 4, and leave the peers file unchanged and no client file behind; of two
 * concurrent joins with one token exactly one wins; the audit lines are there and no token, secret
 * or psk is in any log.
 */
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { blake2s } from '@noble/hashes/blake2.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeInviteToken, invitePsk } from '../../src/enroll/invite-token.js';
import { Proc, TWOWAY_BIN, runTwoway, stopAll } from '../helpers/processes.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitUntil } from '../helpers/wait.js';

const isRoot = process.getuid?.() === 0;
/** The employee's uid on her "machine": nobody, when the test can switch to it (root). */
const EMPLOYEE_UID = 65534;

afterAll(stopAll);

/** A second machine: a home folder of its own, owned by the employee's uid. */
function employeeHome(): string {
  const home = tempDir('employee', '/tmp');
  fs.chmodSync(home, 0o755);
  if (isRoot) fs.chownSync(home, EMPLOYEE_UID, EMPLOYEE_UID);
  return home;
}

/** Runs bin/twoway as the employee: her HOME, no XDG_CONFIG_HOME, and as root her own uid. */
async function asEmployee(home: string, args: readonly string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1', HOME: home };
  const proc = isRoot
    ? new Proc('setpriv', [`--reuid=${EMPLOYEE_UID}`, `--regid=${EMPLOYEE_UID}`, '--clear-groups', process.execPath, TWOWAY_BIN, ...args], { cwd: home, env })
    : new Proc(process.execPath, [TWOWAY_BIN, ...args], { cwd: home, env });
  proc.child.stdin?.end(input);
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  const { code } = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: proc.stdout, stderr: proc.stderr };
}

/** Every file under `dir` (relative paths). */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/** A token with one payload byte changed and its check recomputed: a deliberate forgery, not a typo. */
function forge(token: string, offset: number): string {
  const prefix = 'twoway-invite:';
  const bytes = new Uint8Array(Buffer.from(token.slice(prefix.length), 'base64url'));
  bytes[offset]! ^= 0x5a;
  bytes.set(blake2s(bytes.subarray(0, bytes.length - 4)).subarray(0, 4), bytes.length - 4);
  return prefix + Buffer.from(bytes).toString('base64url');
}

describe('enrollment by invitation', () => {
  let tunnel: TestTunnel;
  let echo: { server: net.Server; port: number };
  /** Every secret the test handed out: none may appear in a log. */
  const secrets: string[] = [];
  let serverConfig: string;

  const invite = async (args: string[]): Promise<string> => {
    const r = await runTwoway(['invite', ...args, '--url', tunnel.url, '--config', serverConfig]);
    expect(r.stderr).toMatch(/^invitation [A-Za-z0-9_-]{22} for /);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^twoway-invite:[A-Za-z0-9_-]+\n$/);
    const token = r.stdout.trim();
    const decoded = decodeInviteToken(token);
    const psk = invitePsk(decoded.secret);
    secrets.push(token.slice('twoway-invite:'.length, 60), Buffer.from(decoded.secret).toString('base64'), Buffer.from(decoded.secret).toString('base64url'));
    secrets.push(Buffer.from(decoded.secret).toString('hex'), Buffer.from(psk).toString('base64'), Buffer.from(psk).toString('hex'));
    return token;
  };
  const peersText = (): string => fs.readFileSync(tunnel.path('peers.toml'), 'utf8');

  beforeAll(async () => {
    echo = await startEchoServer();
    tunnel = new TestTunnel({ peers: [] });
    await tunnel.startServer();
    serverConfig = tunnel.path('server.toml');
  }, 30_000);
  afterAll(async () => {
    await tunnel.stop();
    echo.server.close();
  });

  it(`invite, join on a second machine${isRoot ? ' as another uid' : ' (separate HOME only: not root, so no other uid)'}, approve, then a real stream`, async () => {
    const token = await invite(['alice', '--allow', `127.0.0.1:${echo.port}`, '--approval']);
    await tunnel.server!.waitForEvent('invite.created', { peer: 'alice' });
    expect(fs.statSync(tunnel.path('invites.json')).mode & 0o777).toBe(0o600);
    const home = employeeHome();
    const joined = await asEmployee(home, ['join', '-'], `${token}\n`);
    expect(joined.stderr).toBe('');
    expect(joined.code).toBe(0);
    const dir = path.join(home, '.config', 'twoway');
    expect(joined.stdout).toContain(`joined as alice; wrote ${dir}/client.toml and the new private key ${dir}/client.key (mode 0600)`);
    expect(joined.stdout).toContain("waiting for an administrator's approval: ask them to run: twoway peers approve alice");
    expect(filesUnder(dir).sort()).toEqual(['client.key', 'client.toml']);
    for (const f of ['client.key', 'client.toml']) {
      const st = fs.statSync(path.join(dir, f));
      expect(st.mode & 0o777).toBe(0o600);
      if (isRoot) expect(st.uid).toBe(EMPLOYEE_UID);
    }
    const config = fs.readFileSync(path.join(dir, 'client.toml'), 'utf8');
    expect(config).toContain(`server_url = "${tunnel.url}"`);
    expect(config).toMatch(/server_public_key = "[A-Za-z0-9+/]{43}="/);

    // The server registered her key, pending; its log says so (and refuses her until approved).
    const accepted = await tunnel.server!.waitForEvent('join.accepted', { peer: 'alice' });
    expect(accepted.pending).toBe(true);
    expect(peersText()).toMatch(/name = "alice"[\s\S]*pending = true/);
    const pub = (await asEmployee(home, ['pubkey'], fs.readFileSync(path.join(dir, 'client.key'), 'utf8'))).stdout.trim();
    expect(peersText()).toContain(`public_key = "${pub}"`);
    expect(accepted.fingerprint).toBe(pub);

    const waiting = await asEmployee(home, ['connect', `127.0.0.1:${echo.port}`, '--config', path.join(dir, 'client.toml')], 'hello\n');
    expect(waiting.code).not.toBe(0);
    expect(waiting.stderr).toContain("waiting for an administrator's approval");
    await tunnel.server!.waitForEvent('auth.refused', { reason: 'pending-approval' });

    const approved = await runTwoway(['peers', 'approve', 'alice', '--config', serverConfig]);
    expect(approved.stderr).toBe('');
    expect(approved.stdout).toBe('approved alice; 1 peers on the allowlist\nthe running server reloaded its allowlist\n');
    expect(approved.code).toBe(0);
    expect(peersText()).not.toMatch(/^pending/m);
    await tunnel.server!.waitForEvent('peer.approved', { peer: 'alice' });

    const through = await asEmployee(home, ['connect', `127.0.0.1:${echo.port}`, '--config', path.join(dir, 'client.toml')], 'hello through the tunnel\n');
    expect(through.stderr).toBe('');
    expect(through.stdout).toBe('hello through the tunnel\n');
    expect(through.code).toBe(0);

    // Used once: the same token again is refused, nothing written on that machine.
    const again = employeeHome();
    const reused = await asEmployee(again, ['join', token]);
    expect(reused.code).toBe(4);
    expect(reused.stderr).toContain('the server refused the invitation: it is unknown, expired, already used or revoked');
    expect(filesUnder(again)).toEqual([]);
    await tunnel.server!.waitForEvent('auth.refused', { reason: 'invite-used' });
    const list = JSON.parse((await runTwoway(['invites', 'list', '--json', '--config', serverConfig])).stdout) as { invites: Array<Record<string, unknown>> };
    expect(list.invites.find((i) => i.name === 'alice')).toMatchObject({ status: 'used', usedBy: pub, approval: true });
  }, 60_000);

  it('expired, revoked, unknown and tampered tokens are refused with a clear message; nothing is registered or written', async () => {
    const before = peersText();
    const expired = await invite(['bob', '--expires', '1s']);
    const revoked = await invite(['carol']);
    const open = await invite(['dave']);
    const r = await runTwoway(['invites', 'revoke', 'carol', '--config', serverConfig]);
    expect(r.stdout).toMatch(/^revoked invitation [A-Za-z0-9_-]{22} for carol \(the running server logged it\)\n$/);
    await tunnel.server!.waitForEvent('invite.revoked', { peer: 'carol' });
    await waitUntil(
      () =>
        Date.parse(JSON.parse(fs.readFileSync(tunnel.path('invites.json'), 'utf8')).invites.find((i: { name: string }) => i.name === 'bob').expires_at) <
        Date.now(),
      'the 1 s invitation to expire',
    );

    const cases: Array<{ token: string; code: number; message: string; reason?: string }> = [
      { token: expired, code: 4, message: 'the server refused the invitation', reason: 'invite-expired' },
      { token: revoked, code: 4, message: 'the server refused the invitation', reason: 'invite-revoked' },
      { token: forge(open, 1), code: 4, message: 'the server refused the invitation', reason: 'invite-unknown' },
      // The secret changed: the server answers with dave's psk, which the client cannot open.
      { token: forge(open, 20), code: 4, message: "the invitation's secret is not the one the server holds", reason: 'psk-or-key-confirmation-failed' },
      { token: open.slice(0, -3), code: 3, message: 'the invitation token is damaged (check it was copied whole)' },
      { token: `${open.slice(0, 40)}Q${open.slice(41)}`, code: 3, message: 'the invitation token is damaged (check it was copied whole)' },
    ];
    for (const c of cases) {
      const home = employeeHome();
      const joined = await asEmployee(home, ['join', c.token]);
      expect(joined.code, c.message).toBe(c.code);
      expect(joined.stderr).toContain(c.message);
      expect(joined.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      expect(joined.stdout).toBe('');
      expect(filesUnder(home)).toEqual([]);
      if (c.reason !== undefined) await tunnel.server!.waitForEvent('auth.refused', { reason: c.reason });
    }
    expect(peersText()).toBe(before);
    // The tampered attempts did not spend dave's invitation.
    const list = JSON.parse((await runTwoway(['invites', 'list', '--json', '--config', serverConfig])).stdout) as { invites: Array<Record<string, unknown>> };
    expect(Object.fromEntries(list.invites.map((i) => [i.name, i.status]))).toMatchObject({ bob: 'expired', carol: 'revoked', dave: 'open' });
    expect(tunnel.server!.logLines().filter((l) => l.event === 'join.accepted' && l.peer !== 'alice')).toEqual([]);
  }, 60_000);

  it('two concurrent joins with one token: exactly one wins', async () => {
    const before = peersText();
    const token = await invite(['erin', '--allow', `127.0.0.1:${echo.port}`]);
    const homes = [employeeHome(), employeeHome()];
    const results = await Promise.all(homes.map((h) => asEmployee(h, ['join', token])));
    const codes = results.map((x) => x.code).sort();
    expect(codes).toEqual([0, 4]);
    const winner = results.findIndex((x) => x.code === 0);
    expect(filesUnder(path.join(homes[winner]!, '.config', 'twoway')).sort()).toEqual(['client.key', 'client.toml']);
    expect(filesUnder(homes[1 - winner]!)).toEqual([]);
    expect(results[1 - winner]!.stderr).toMatch(/refused the (invitation|join \(invite-used\))/);
    expect(peersText().length).toBeGreaterThan(before.length);
    expect(peersText().match(/name = "erin"/g)).toHaveLength(1);
    expect(tunnel.server!.logLines().filter((l) => l.event === 'join.accepted' && l.peer === 'erin')).toHaveLength(1);
  }, 60_000);

  it('a join the server cannot register (the name was taken meanwhile) is refused after the handshake, and the invitation stays open', async () => {
    const token = await invite(['gina']);
    const other = (await runTwoway(['keygen'])).stdout;
    const otherPub = (await runTwoway(['pubkey'], { input: other })).stdout.trim();
    expect((await runTwoway(['peers', 'add', 'gina', '--public-key', otherPub, '--config', serverConfig])).code).toBe(0);
    const before = peersText();
    const home = employeeHome();
    const joined = await asEmployee(home, ['join', token]);
    expect(joined.code).toBe(4);
    expect(joined.stderr).toBe('twoway: the server refused the join (name-taken): a peer named gina is on the allowlist already\n');
    expect(filesUnder(home)).toEqual([]);
    expect(peersText()).toBe(before);
    await tunnel.server!.waitForEvent('join.refused', { reason: 'name-taken', peer: 'gina' });
    const list = JSON.parse((await runTwoway(['invites', 'list', '--json', '--config', serverConfig])).stdout) as { invites: Array<Record<string, unknown>> };
    expect(list.invites.find((i) => i.name === 'gina')!.status).toBe('open');
  }, 30_000);

  it('join --dir writes there; files in the way refuse the join before anything is sent (the invitation stays open)', async () => {
    const token = await invite(['hank']);
    const home = employeeHome();
    const dir = path.join(home, 'work-vpn');
    fs.mkdirSync(dir, { mode: 0o700 });
    if (isRoot) fs.chownSync(dir, EMPLOYEE_UID, EMPLOYEE_UID);
    fs.writeFileSync(path.join(dir, 'client.toml'), '# mine\n');
    if (isRoot) fs.chownSync(path.join(dir, 'client.toml'), EMPLOYEE_UID, EMPLOYEE_UID);
    const blocked = await asEmployee(home, ['join', token, '--dir', dir]);
    expect(blocked.code).toBe(3);
    expect(blocked.stderr).toBe(`twoway: ${dir}/client.toml exists already; nothing was sent or written (--dir elsewhere, or --force to replace them)\n`);
    expect(fs.readFileSync(path.join(dir, 'client.toml'), 'utf8')).toBe('# mine\n');
    expect(fs.readdirSync(dir)).toEqual(['client.toml']);
    const list = JSON.parse((await runTwoway(['invites', 'list', '--json', '--config', serverConfig])).stdout) as { invites: Array<Record<string, unknown>> };
    expect(list.invites.find((i) => i.name === 'hank')!.status).toBe('open');
    const forced = await asEmployee(home, ['join', token, '--dir', dir, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain(`start the tunnel: twoway client --config ${dir}/client.toml`);
    expect(fs.readdirSync(dir).sort()).toEqual(['client.key', 'client.toml']);
    expect(fs.readFileSync(path.join(dir, 'client.toml'), 'utf8')).toContain("written by 'twoway join' (peer hank)");
    const checked = await asEmployee(home, ['check-config', path.join(dir, 'client.toml')]);
    expect(checked.stdout).toMatch(/^ok: .*client\.toml is a valid client file/);
  }, 30_000);

  it('a --verify totp invitation returns the otpauth URI once, and the server keeps the secret in a 0600 file', async () => {
    const token = await invite(['frank', '--verify', 'totp']);
    const home = employeeHome();
    const joined = await asEmployee(home, ['join', token]);
    expect(joined.code).toBe(0);
    const uri = /otpauth:\/\/totp\/[^\s]+/.exec(joined.stdout)?.[0];
    expect(uri).toBeDefined();
    const secret = new URL(uri!).searchParams.get('secret')!;
    expect(secret).toMatch(/^[A-Z2-7]+=*$/);
    secrets.push(secret);
    const totp = JSON.parse(fs.readFileSync(tunnel.path('totp.json'), 'utf8')) as { peers: Record<string, { secret: string }> };
    expect(totp.peers.frank!.secret).toBe(secret);
    expect(fs.statSync(tunnel.path('totp.json')).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.join(home, '.config', 'twoway')).join(' ')).not.toMatch(/totp/);
    expect(
      filesUnder(home)
        .map((f) => fs.readFileSync(path.join(home, f), 'utf8'))
        .join(''),
    ).not.toContain(secret);
    expect((await tunnel.server!.waitForEvent('join.accepted', { peer: 'frank' })).verify).toBe('totp');
  }, 30_000);

  it('invite --json --qr: the token in JSON on stdout, a QR code of it on stderr', async () => {
    const r = await runTwoway(['invite', 'jill', '--json', '--qr', '--expires', '30m', '--url', tunnel.url, '--config', serverConfig]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { token: string; id: string; name: string; expiresAt: string; url: string };
    expect(out).toMatchObject({ name: 'jill', url: tunnel.url });
    expect(decodeInviteToken(out.token).url).toBe(tunnel.url);
    expect(Date.parse(out.expiresAt) - Date.now()).toBeLessThanOrEqual(30 * 60_000);
    expect(r.stderr).toMatch(/[█▀▄]{7}/);
    expect(r.stderr).not.toContain(out.token);
    const decoded = decodeInviteToken(out.token);
    secrets.push(out.token.slice(14, 60), Buffer.from(decoded.secret).toString('base64'), Buffer.from(invitePsk(decoded.secret)).toString('base64'));
  });

  it('no token, secret, psk or TOTP secret reaches any log or list; every audit event was written', async () => {
    const out = tunnel.server!.stdout + tunnel.server!.stderr;
    const listed = (await runTwoway(['invites', 'list', '--config', serverConfig])).stdout;
    expect(secrets.length).toBeGreaterThan(10);
    for (const s of secrets) {
      expect(out).not.toContain(s);
      expect(listed).not.toContain(s);
    }
    const events = new Set(tunnel.server!.logLines().map((l) => l.event));
    for (const e of ['invite.created', 'invite.revoked', 'join.accepted', 'join.refused', 'peer.approved']) expect(events.has(e), e).toBe(true);
  });
});

describe('enrollment on a server with require_psk', () => {
  let tunnel: TestTunnel;
  afterAll(() => tunnel.stop());

  it('twoway invite refuses (exit 3, nothing written): a joined peer would have no psk file', async () => {
    tunnel = new TestTunnel({ peers: [], serverExtra: 'require_psk = true' });
    await tunnel.startServer();
    const r = await runTwoway(['invite', 'ivy', '--url', tunnel.url, '--config', tunnel.path('server.toml')]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/require_psk is set, and a peer that joins by invitation has no psk_file/);
    expect(fs.existsSync(tunnel.path('invites.json'))).toBe(false);
  }, 30_000);
});
