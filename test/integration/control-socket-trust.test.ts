/**
 * How `twoway connect` finds the client daemon without flags, and which control sockets it trusts
 * with a target (issue 12 item 4, issue 13 item 10): another uid (65534) that binds the path
 * first must receive nothing, while the system unit's layout (a service user's socket in a folder
 * only root can have made) is used.
 */
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Proc, runTwoway } from '../helpers/processes.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import { tempDir } from '../helpers/temp-dir.js';

const NOBODY = 65534;
let tunnel: TestTunnel;
let echo: { server: net.Server; port: number };
const fakes: Proc[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  echo = await startEchoServer();
  tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${echo.port}`] }] });
  await tunnel.startServer();
  await tunnel.startClient('alice');
  // The daemon's own session, counted before the tests count new ones.
  await tunnel.server!.waitForEvent('auth.accepted');
}, 30_000);

afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.stop()));
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

afterAll(async () => {
  await tunnel?.stop();
  echo?.server.close();
});

/** A temp folder of `mode`, owned by `owner`. */
function ownedDir(mode: number, owner = 0): string {
  const dir = tempDir('trust');
  dirs.push(dir);
  fs.chmodSync(dir, mode);
  fs.chownSync(dir, owner, owner);
  return dir;
}

const sessionsAtServer = (): number => tunnel.server!.logLines().filter((l) => l.event === 'auth.accepted').length;

/**
 * A "daemon" run as uid 65534 on `socketPath`: prints `accepted` and the request line it got, and
 * answers with a refusal (so a twoway connect that trusts it exits 5).
 */
async function fakeDaemon(socketPath: string): Promise<Proc> {
  const script = `
    const net = require('node:net');
    net.createServer((s) => {
      s.on('error', () => {});
      console.log('accepted');
      s.once('data', (d) => { console.log(String(d).trim()); s.end(JSON.stringify({ ok: false, error: 'refused by the fake', reason: 'not-permitted' }) + '\\n'); });
    }).listen(${JSON.stringify(socketPath)}, () => console.log('listening'));`;
  const fake = new Proc(process.execPath, ['-e', script], { uid: NOBODY, gid: NOBODY });
  fakes.push(fake);
  await fake.waitFor((p) => p.stdout.includes('listening'), 'the fake daemon to listen');
  expect(fs.statSync(socketPath).uid).toBe(NOBODY);
  return fake;
}

/** Runs `twoway connect` with a clean environment: HOME as given, no TWOWAY_CONFIG or XDG_CONFIG_HOME. */
function connect(args: string[], home: string, input = 'ping\n'): ReturnType<typeof runTwoway> {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  delete env.TWOWAY_CONFIG;
  delete env.XDG_CONFIG_HOME;
  return runTwoway(['connect', ...args], { input, env });
}

/** alice's client config with absolute paths (for ~/.config/twoway/client.toml). */
function aliceConfigText(controlSocket = tunnel.path('client-alice.sock')): string {
  return fs
    .readFileSync(tunnel.path('client-alice.toml'), 'utf8')
    .replace('private_key_file = "alice.key"', `private_key_file = ${JSON.stringify(tunnel.path('alice.key'))}`)
    .replace('control_socket = "client-alice.sock"', `control_socket = ${JSON.stringify(controlSocket)}`);
}

describe('finding the daemon without flags', () => {
  it('uses ~/.config/twoway/client.toml and its control socket when neither -c nor TWOWAY_CONFIG is given', async () => {
    const home = ownedDir(0o700);
    fs.mkdirSync(path.join(home, '.config', 'twoway'), { recursive: true });
    fs.writeFileSync(path.join(home, '.config', 'twoway', 'client.toml'), aliceConfigText());
    const sessions = sessionsAtServer();
    const r = await connect([`127.0.0.1:${echo.port}`], home);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('ping\n');
    // Through the running daemon: no session of its own.
    expect(sessionsAtServer()).toBe(sessions);
  });

  it('--socket PATH uses that daemon without any config file', async () => {
    const home = ownedDir(0o700);
    const sessions = sessionsAtServer();
    const r = await connect(['--socket', tunnel.path('client-alice.sock'), `127.0.0.1:${echo.port}`], home);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('ping\n');
    expect(sessionsAtServer()).toBe(sessions);
  });

  it('--socket PATH with no daemon there exits 6 (no session of its own without a config)', async () => {
    const home = ownedDir(0o700);
    const r = await connect(['--socket', path.join(home, 'none.sock'), `127.0.0.1:${echo.port}`], home);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/no daemon is listening/);
  });
});

describe('a control socket another uid could have bound is refused (exit 6)', () => {
  it('in a folder others may write (sticky, mode 1777): nothing reaches the socket', async () => {
    const shared = ownedDir(0o1777);
    const socketPath = path.join(shared, 'client.sock');
    const fake = await fakeDaemon(socketPath);
    const home = ownedDir(0o700);
    const r = await connect(['--socket', socketPath, `127.0.0.1:${echo.port}`], home);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(`control socket ${socketPath} is in ${fs.realpathSync(shared)}, a folder others may write (mode 1777)`);
    expect(r.stdout).toBe('');
    expect(fake.stdout).not.toMatch(/accepted/);
  });

  it("named by the config's control_socket: refused too, and no session of its own either", async () => {
    const shared = ownedDir(0o1777);
    const socketPath = path.join(shared, 'client.sock');
    const fake = await fakeDaemon(socketPath);
    const home = ownedDir(0o700);
    const config = path.join(home, 'client.toml');
    fs.writeFileSync(config, aliceConfigText(socketPath));
    const sessions = sessionsAtServer();
    const r = await connect(['-c', config, `127.0.0.1:${echo.port}`], home);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/not sending the target there/);
    expect(fake.stdout).not.toMatch(/accepted/);
    expect(sessionsAtServer()).toBe(sessions);
  });

  it("the other uid's own folder under /tmp: refused", async () => {
    const theirs = ownedDir(0o755, NOBODY);
    const socketPath = path.join(theirs, 'client.sock');
    const fake = await fakeDaemon(socketPath);
    const r = await connect(['--socket', socketPath, `127.0.0.1:${echo.port}`], ownedDir(0o700));
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/owned by uid 65534, in a folder that is not root's alone/);
    expect(fake.stdout).not.toMatch(/accepted/);
  });

  it("the system unit's layout (a service user's folder inside a root-only folder, like /run/twoway) is used", async () => {
    const run = ownedDir(0o755);
    const unitDir = path.join(run, 'twoway');
    fs.mkdirSync(unitDir, { mode: 0o750 });
    fs.chownSync(unitDir, NOBODY, NOBODY);
    const socketPath = path.join(unitDir, 'client-work.sock');
    const fake = await fakeDaemon(socketPath);
    const r = await connect(['--socket', socketPath, `127.0.0.1:${echo.port}`], ownedDir(0o700));
    // The fake's refusal came back: the request went to it.
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/refused by the fake/);
    expect(fake.stdout).toMatch(/accepted\n.*"cmd":"connect"/);
  });
});
