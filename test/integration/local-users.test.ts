/**
 * Local listeners belong to one user (issue 13 #7): through real daemons, a second uid on the
 * same machine (65534, started with setpriv) cannot use a loopback forward or SOCKS5 listener
 * while the owner check is on (connection reset, the target sees nothing, `local.refused` in the
 * log), the owner can, an opted-out listener admits it; a unix socket forward works and is 0600.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestTunnel } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

const run = promisify(execFile);
const OTHER_UID = 65534;
const isRoot = process.getuid?.() === 0;

let tunnel: TestTunnel;
let target: net.Server;
let targetPort: number;
/** Bytes each connection to the target received, by connection. */
const received: string[] = [];
let ports: { owned: number; socks: number; open: number; uids: number };
let unixPath: string;

/** Connects as `uid` and sends a line (SOCKS5: a CONNECT to the target first); reports what came back. */
async function asUid(uid: number | undefined, how: { port?: number; path?: string; socks?: boolean }): Promise<{ outcome: string; data: string }> {
  const script = `
    const net = require('net');
    const s = ${how.path ? `net.connect(${JSON.stringify(how.path)})` : `net.connect(${how.port}, '127.0.0.1')`};
    let data = Buffer.alloc(0);
    const done = (outcome) => { process.stdout.write(JSON.stringify({ outcome, data: data.toString('hex') })); process.exit(0); };
    s.on('connect', () => {
      ${
        how.socks
          ? `s.write(Buffer.from([5, 1, 0]));
      s.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, ${targetPort >> 8}, ${targetPort & 255}]));`
          : ''
      }
      s.write('hello from ' + process.getuid() + '\\n');
    });
    s.on('data', (c) => { data = Buffer.concat([data, c]); if (data.includes('echo:')) done('answered'); });
    s.on('error', (e) => done(e.code || 'error'));
    s.on('close', () => done('closed'));
    setTimeout(() => done('timeout'), 5000);`;
  const argv =
    uid === undefined ? [process.execPath, '-e', script] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, '-e', script];
  const { stdout } = await run(argv[0]!, argv.slice(1), { timeout: 10_000 });
  const r = JSON.parse(stdout) as { outcome: string; data: string };
  return { outcome: r.outcome, data: Buffer.from(r.data, 'hex').toString('latin1') };
}

beforeAll(async () => {
  // The target answers every line it gets and records it.
  target = net.createServer((s) => {
    s.on('error', () => {});
    s.on('data', (c: Buffer) => {
      received.push(c.toString());
      s.write(`echo:${c.toString()}`);
    });
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  targetPort = (target.address() as net.AddressInfo).port;
  tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${targetPort}`] }] });
  // Traversable by everyone (the keys inside stay 0600), so only the socket's own mode guards it.
  fs.chmodSync(tunnel.dir, 0o755);
  fs.mkdirSync(tunnel.path('run'), { mode: 0o755 });
  unixPath = tunnel.path('run/forward.sock');
  await tunnel.startServer();
  const t = `target = "127.0.0.1:${targetPort}"\n`;
  const client = await tunnel.startClient(
    'alice',
    `[[forward]]\nlisten = "127.0.0.1:0"\n${t}` +
      `[[socks]]\nlisten = "127.0.0.1:0"\n` +
      `[[forward]]\nlisten = "127.0.0.1:0"\nallow_other_users = true\n${t}` +
      `[[forward]]\nlisten = "127.0.0.1:0"\nallow_uids = [${OTHER_UID}]\n${t}` +
      `[[forward]]\nlisten = "unix:run/forward.sock"\n${t}`,
  );
  const listens = client.logLines().filter((l) => l.event === 'listen');
  const tcp = listens.filter((l) => l.kind === 'forward' && l.port !== undefined).map((l) => Number(l.port));
  expect(tcp).toHaveLength(3);
  const socks = listens.filter((l) => l.kind === 'socks').map((l) => Number(l.port));
  ports = { owned: tcp[0]!, open: tcp[1]!, uids: tcp[2]!, socks: socks[0]! };
  expect(listens.find((l) => l.path !== undefined)?.path).toBe(unixPath);
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  target?.close();
});

describe('a second local uid', () => {
  it('cannot use a loopback forward: reset, nothing reaches the target, refusal logged', async () => {
    // setpriv to another uid needs root; without it this suite fails rather than skips.
    expect(isRoot, 'these tests run as root (setpriv --reuid=65534)').toBe(true);
    const before = received.length;
    const r = await asUid(OTHER_UID, { port: ports.owned });
    expect(['ECONNRESET', 'closed']).toContain(r.outcome);
    expect(r.data).toBe('');
    const line = await tunnel.clients[0]!.waitForEvent('local.refused', { kind: 'forward', uid: OTHER_UID, reason: 'other-user' });
    expect(line.listen).toBe(`127.0.0.1:${ports.owned}`);
    expect(received.slice(before).filter((l) => l.includes(`from ${OTHER_UID}`))).toEqual([]);
  });

  it('cannot use a SOCKS5 listener: no SOCKS reply, nothing reaches the target', async () => {
    const r = await asUid(OTHER_UID, { port: ports.socks, socks: true });
    expect(['ECONNRESET', 'closed']).toContain(r.outcome);
    expect(r.data).toBe('');
    await tunnel.clients[0]!.waitForEvent('local.refused', { kind: 'socks', uid: OTHER_UID });
    expect(received.filter((l) => l.includes(`from ${OTHER_UID}`))).toEqual([]);
  });

  it('cannot connect to the unix socket forward, which is mode 0600', async () => {
    const st = fs.lstatSync(unixPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    const r = await asUid(OTHER_UID, { path: unixPath });
    expect(r.outcome).toBe('EACCES');
    expect(received.filter((l) => l.includes(`from ${OTHER_UID}`))).toEqual([]);
  });

  it('gets through a listener that opts out (allow_other_users) or names its uid (allow_uids)', async () => {
    for (const port of [ports.open, ports.uids]) {
      const r = await asUid(OTHER_UID, { port });
      expect(r.outcome).toBe('answered');
      expect(r.data).toBe(`echo:hello from ${OTHER_UID}\n`);
    }
  });
});

describe('the owner', () => {
  it('uses the loopback forward, the SOCKS5 listener and the unix socket forward', async () => {
    const me = process.getuid!();
    const forward = await asUid(undefined, { port: ports.owned });
    expect(forward).toEqual({ outcome: 'answered', data: `echo:hello from ${me}\n` });
    const socks = await asUid(undefined, { port: ports.socks, socks: true });
    expect(socks.outcome).toBe('answered');
    expect(socks.data.endsWith(`echo:hello from ${me}\n`)).toBe(true);
    expect(socks.data.charCodeAt(0)).toBe(5); // the SOCKS replies came first
    const unix = await asUid(undefined, { path: unixPath });
    expect(unix).toEqual({ outcome: 'answered', data: `echo:hello from ${me}\n` });
  });

  it('removes the unix socket when the client stops, and replaces a stale one at start', async () => {
    await tunnel.clients[0]!.stop();
    await waitUntil(() => !fs.existsSync(unixPath), 'the unix socket removed on stop');
    // A stale socket, as a crashed run leaves it: bound, then the process killed (never unlinked).
    await run(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(unixPath)}, () => process.kill(process.pid, 'SIGKILL'))`]).catch(
      () => {},
    );
    expect(fs.lstatSync(unixPath).isSocket()).toBe(true);
    const client = await tunnel.startClient('alice', `[[forward]]\nlisten = "unix:run/forward.sock"\ntarget = "127.0.0.1:${targetPort}"\n`);
    await client.waitForEvent('listen', { path: unixPath });
    expect(await asUid(undefined, { path: unixPath })).toEqual({ outcome: 'answered', data: `echo:hello from ${process.getuid!()}\n` });
  });
});
