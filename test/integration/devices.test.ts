/**
 * Device endpoints through real daemons: a device agent (a client with [[service]] tables) in
 * front of a private OpenSSH server and an echo service, users reaching them through the server
 * end to end, both halves of the permission check, offline and restarting devices, a capture of
 * what the server relays, reverse listeners, and revocation on either side.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey, generateKeyPair } from '../../src/crypto/keys.js';
import { TWOWAY_BIN, runTwoway, twoway, type Proc } from '../helpers/processes.js';
import { freePort, refusingPort } from '../helpers/ports.js';
import { startSshd, type TestSshd } from '../helpers/sshd.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const user = os.userInfo().username;

let tunnel: TestTunnel;
let sshd: TestSshd;
let sshPort: number;
let echo: { server: net.Server; port: number };
let reversePort: number;
let dir: string;
let captureFile: string;
let alice: Proc;
let device: Proc;
let sshForwardPort: number;
let echoForwardPort: number;
/** A service port nobody listens on (the device's dial is refused). */
let deadPort: number;
const build1 = generateKeyPair();
const build2 = generateKeyPair();
const carolKey = generateKeyPair();

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

const sshArgs = (extra: string[]): string[] => sshd.clientArgs(extra, 'no');

const pins = (): string =>
  `[[device]]\nname = "build1"\npublic_key = "${encodeKey(build1.publicKey)}"\n` +
  `[[device]]\nname = "build2"\npublic_key = "${encodeKey(build2.publicKey)}"\n`;

/** Alice's entry in a device's allow list (allow entries bind keys: NAME=KEY). */
const aliceAllow = (): string => `alice=${encodeKey(tunnel.peers.find((p) => p.name === 'alice')!.key.publicKey)}`;

/** The device agent's services; `echoAllow` lets the revocation test narrow it. */
const deviceServices = (echoAllow: readonly string[] = [aliceAllow()]): string =>
  `[[service]]\nname = "ssh"\ntarget = "127.0.0.1:${sshPort}"\nallow = ["${aliceAllow()}", "${encodeKey(carolKey.publicKey)}"]\n` +
  `[[service]]\nname = "echo"\ntarget = "127.0.0.1:${echo.port}"\nallow = ${JSON.stringify(echoAllow)}\nreverse = true\n` +
  `[[service]]\nname = "dead"\ntarget = "127.0.0.1:${deadPort}"\nallow = ["${aliceAllow()}"]\n`;

async function startDevice(): Promise<Proc> {
  const proc = await tunnel.startClient('build1', deviceServices());
  await waitForServices();
  return proc;
}

async function serverStatus(): Promise<{ devices: Array<{ name: string; services: string[] }> }> {
  const r = await runTwoway(['status', '--json', '--socket', tunnel.path('server.sock')]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { devices: Array<{ name: string; services: string[] }> };
}

async function waitForServices(): Promise<void> {
  await waitUntil(
    async () => {
      const s = await serverStatus();
      return s.devices.some((d) => d.name === 'build1' && d.services.includes('ssh') && d.services.includes('echo') && d.services.includes('dead'));
    },
    'build1 to announce its services',
    15_000,
  );
}

/** Writes `data`, half-closes, and collects the reply until the far end closes. */
function exchange(port: number, data: Buffer): Promise<{ received: Buffer; error?: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.end(data));
    let error: NodeJS.ErrnoException | undefined;
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (e) => (error = e));
    socket.on('close', () => resolve({ received: Buffer.concat(chunks), ...(error ? { error } : {}) }));
  });
}

/** An open echo stream through `port`: one round trip done, the socket still open. */
async function openEcho(port: number): Promise<{ socket: net.Socket; closed: Promise<NodeJS.ErrnoException | undefined> }> {
  const socket = net.connect(port, '127.0.0.1');
  let error: NodeJS.ErrnoException | undefined;
  socket.on('error', (e) => (error = e));
  const closed = new Promise<NodeJS.ErrnoException | undefined>((resolve) => socket.on('close', () => resolve(error)));
  const got = new Promise<Buffer>((resolve) => socket.once('data', resolve));
  socket.write('ping');
  expect((await got).toString()).toBe('ping');
  return { socket, closed };
}

function userConnect(config: string, target: string, input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runTwoway(['connect', '--config', tunnel.path(config), target], { input, timeoutMs: 30_000 });
}

beforeAll(async () => {
  dir = tempDir('devices');
  captureFile = path.join(dir, 'relay-capture.bin');
  sshd = await startSshd(dir);
  sshPort = sshd.port;
  echo = await startEchoServer();
  reversePort = await freePort();
  deadPort = await refusingPort();

  tunnel = new TestTunnel({
    peers: [
      { name: 'alice', allow: [], devices: ['build1:*', 'build2:ssh'] },
      { name: 'bob', allow: [], devices: ['build1:*'] },
      { name: 'carol', key: carolKey, allow: [], devices: [] },
      { name: 'dave', allow: [], devices: ['build1:echo'] },
      { name: 'build1', key: build1, allow: [], kind: 'device', reverse: [`echo=127.0.0.1:${reversePort}`] },
      { name: 'build2', key: build2, allow: [], kind: 'device' },
    ],
  });
  // What the server relays for device streams is written to a file: the test reads it below.
  await startServerWithCapture();
  device = await startDevice();
  alice = await tunnel.startClient(
    'alice',
    `${pins()}[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "build1:ssh"\n[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "build1:echo"\n`,
  );
  [sshForwardPort, echoForwardPort] = TestTunnel.listenerPorts(alice) as [number, number];
  tunnel.clientConfig('bob', pins());
  tunnel.clientConfig('carol', pins());
  tunnel.clientConfig('dave', '');
  fs.writeFileSync(path.join(dir, 'big.bin'), randomBytes(4 * 1024 * 1024));
}, 90_000);

async function startServerWithCapture(): Promise<void> {
  fs.writeFileSync(
    tunnel.path('server.toml'),
    `[server]\nlisten = "127.0.0.1:0"\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\n` +
      `control_socket = "server.sock"\nshutdown_grace_ms = 3000\n`,
  );
  const server = twoway(['server', '--config', tunnel.path('server.toml'), '--debug-relay-capture', captureFile]);
  tunnel.server = server;
  tunnel.serverPort = Number((await server.waitForEvent('listen')).port);
  await server.waitForEvent('daemon.ready');
}

afterAll(async () => {
  await tunnel?.stop();
  sshd?.stop();
  echo?.server.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('device endpoints', () => {
  it('the server lists the connected device and the services it announced', async () => {
    const status = await serverStatus();
    const d = status.devices.find((x) => x.name === 'build1');
    expect(d?.services.sort()).toEqual(['dead', 'echo', 'ssh']);
    expect(status.devices.some((x) => x.name === 'build2')).toBe(false);
    const text = await runTwoway(['status', '--socket', tunnel.path('server.sock')]);
    expect(text.stdout).toMatch(/build1/);
    expect(text.stdout).toMatch(/ssh/);
  });

  it('real OpenSSH reaches the sshd behind the device through `twoway connect` (SERVICE.DEVICE.twoway), sha256 both ways', async () => {
    const proxy = `ProxyCommand=${process.execPath} ${TWOWAY_BIN} connect --config ${tunnel.path('client-alice.toml')} %h:%p`;
    const ssh = ['ssh', ...sshArgs(['-o', `'${proxy}'`]), `${user}@ssh.build1.twoway`].join(' ');
    const big = path.join(dir, 'big.bin');
    const up = await run('bash', ['-c', `${ssh} sha256sum < ${big}`], { timeout: 60_000 });
    expect(up.stdout.split(' ')[0]).toBe(sha256(fs.readFileSync(big)));
    const down = await run('bash', ['-c', `${ssh} cat ${big} | sha256sum`], { timeout: 60_000 });
    expect(down.stdout.split(' ')[0]).toBe(sha256(fs.readFileSync(big)));
  });

  it('scp up and down through a local forward to build1:ssh', async () => {
    const scp = (args: string[]): Promise<unknown> => run('scp', [...sshArgs(['-P', String(sshForwardPort)]), ...args], { timeout: 60_000 });
    const remote = path.join(dir, 'uploaded.bin');
    await scp([path.join(dir, 'big.bin'), `${user}@127.0.0.1:${remote}`]);
    expect(sha256(fs.readFileSync(remote))).toBe(sha256(fs.readFileSync(path.join(dir, 'big.bin'))));
    const back = path.join(dir, 'downloaded.bin');
    await scp([`${user}@127.0.0.1:${remote}`, back]);
    expect(sha256(fs.readFileSync(back))).toBe(sha256(fs.readFileSync(path.join(dir, 'big.bin'))));
  });

  it('an offline device is refused at once with a clear message', async () => {
    const r = await userConnect('client-alice.toml', 'build2:ssh');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/device build2 is not connected/);
    await tunnel.server!.waitForEvent('stream.refused', { reason: 'device-offline' });
  });

  it('permitted by the server but refused by the device', async () => {
    const r = await userConnect('client-bob.toml', 'build1:ssh');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/not permitted|may not/i);
    await device.waitForEvent('device.stream.refused', { user: 'bob' });
  });

  it('a device service that refuses the dial: the user stream is reset with the reason, logged on both sides', async () => {
    // Through alice's daemon (its control socket), with input: the reset must reach `twoway
    // connect` as a failure with the reason, not as a clean end.
    const r = await userConnect('client-alice.toml', 'build1:dead', 'hello');
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/connection-refused/);
    await device.waitForEvent('device.stream.refused', { user: 'alice', service: 'dead', reason: 'connection-refused' });
    await alice.waitForEvent('stream.reset', { target: 'build1:dead', reason: 'connection-refused' });
  });

  it('accepted by the device but refused by the server: the device never sees the open', async () => {
    const r = await userConnect('client-carol.toml', 'build1:ssh');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/not permitted|may not/i);
    await tunnel.server!.waitForEvent('stream.refused', { peer: 'carol' });
    expect(device.logLines().some((l) => l.user === 'carol')).toBe(false);
  });

  it('a device target without a pinned device key fails before anything is sent', async () => {
    const r = await userConnect('client-dave.toml', 'build1:echo');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no public key pinned for device build1/);
    expect(tunnel.server!.logLines().some((l) => l.peer === 'dave' && String(l.event).startsWith('device.stream'))).toBe(false);
  });

  it('the server relays only ciphertext of an end-to-end stream (and the capture does show plaintext of a reverse-listener stream)', async () => {
    const marker = Buffer.from('PLAINTEXT-MARKER-4f1c9a ');
    const payload = Buffer.concat(Array.from({ length: 40_000 }, () => marker)); // ~1 MiB
    const before = fs.existsSync(captureFile) ? fs.statSync(captureFile).size : 0;
    const r = await exchange(echoForwardPort, payload);
    expect(r.error).toBeUndefined();
    expect(sha256(r.received)).toBe(sha256(payload));
    await waitUntil(() => fs.existsSync(captureFile) && fs.statSync(captureFile).size >= before + 2 * payload.length, 'the capture to hold both directions');
    const e2e = fs.readFileSync(captureFile).subarray(before);
    expect(e2e.includes(Buffer.from('PLAINTEXT-MARKER'))).toBe(false);
    // Positive control: the same capture through a reverse listener (plain TCP at the server).
    const mid = fs.statSync(captureFile).size;
    const viaReverse = await exchange(reversePort, payload.subarray(0, 64 * 1024));
    expect(viaReverse.received.length).toBe(64 * 1024);
    await waitUntil(() => fs.statSync(captureFile).size >= mid + 2 * 64 * 1024, 'the reverse stream in the capture');
    expect(fs.readFileSync(captureFile).subarray(mid).includes(Buffer.from('PLAINTEXT-MARKER'))).toBe(true);
  });

  it('audits device streams with user, device, service, bytes and duration', async () => {
    const line = await tunnel.server!.waitForEvent('device.stream.close', { peer: 'alice', device: 'build1', service: 'echo' });
    expect(typeof line.durationMs).toBe('number');
    expect(Number(line.bytesToDevice)).toBeGreaterThan(0);
    expect(Number(line.bytesFromDevice)).toBeGreaterThan(0);
    expect(JSON.stringify(tunnel.server!.logLines())).not.toContain('PLAINTEXT-MARKER');
  });

  it('a device restarting mid-use resets the user stream; a new stream works once it is back; its reverse port is released and reclaimed', async () => {
    const open = await openEcho(echoForwardPort);
    const reverse = await openEcho(reversePort);
    await device.stop();
    const [err, reverseErr] = await Promise.all([open.closed, reverse.closed]);
    expect(err?.code).toBe('ECONNRESET');
    expect(reverseErr?.code).toBe('ECONNRESET');
    await tunnel.server!.waitForEvent('device.offline', { device: 'build1' });
    const refused = await exchange(reversePort, Buffer.from('x'));
    expect(refused.error?.code).toBe('ECONNREFUSED');
    const offline = await userConnect('client-alice.toml', 'build1:echo');
    expect(offline.stderr).toMatch(/device build1 is not connected/);

    device = await startDevice();
    const again = await exchange(echoForwardPort, Buffer.from('back again'));
    expect(again.received.toString()).toBe('back again');
    await waitUntil(async () => (await exchange(reversePort, Buffer.from('rev'))).received.toString() === 'rev', 'the reverse listener to come back');
  });

  it('revocation on the device side resets the open stream at once', async () => {
    const open = await openEcho(echoForwardPort);
    tunnel.clientConfig('build1', deviceServices([`nobody=${encodeKey(generateKeyPair().publicKey)}`]));
    device.kill('SIGHUP');
    expect((await open.closed)?.code).toBe('ECONNRESET');
    const r = await userConnect('client-alice.toml', 'build1:echo');
    expect(r.code).toBe(5);
    // Restore for the next test.
    tunnel.clientConfig('build1', deviceServices());
    device.kill('SIGHUP');
    await waitUntil(async () => (await exchange(echoForwardPort, Buffer.from('ok'))).received.toString() === 'ok', 'alice allowed again');
  });

  it('revocation on the server side resets the open stream at once', async () => {
    const open = await openEcho(echoForwardPort);
    tunnel.writePeers(tunnel.peers.map((p) => (p.name === 'alice' ? { ...p, devices: [] } : p)));
    tunnel.server!.kill('SIGHUP');
    expect((await open.closed)?.code).toBe('ECONNRESET');
    const r = await userConnect('client-alice.toml', 'build1:echo');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/not permitted|may not/i);
  });
});
