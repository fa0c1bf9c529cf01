/**
 * The server host's own addresses under a wildcard listen (issue 13, item 3), through real
 * daemons in two network namespaces this test creates: the server host (10.213.7.1 on one end
 * of a veth pair) and another host (10.213.7.2 on the other end). With `listen = "0.0.0.0:8443"`
 * and the broad rule `10.0.0.0/8:2222`, a target on the server host's own interface address is
 * refused `not-permitted` and sees no connection; the same port on the other host is reached.
 *
 * Needs root and iproute2 (`.ci/install-deps` installs it). Nothing is skipped: if the namespaces
 * cannot be made, the test fails.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey } from '../../src/crypto/keys.js';
import { Proc, TWOWAY_BIN, stopAll } from '../helpers/processes.js';
import { TestTunnel } from '../helpers/tunnel.js';

const tag = process.pid.toString(36).slice(-5);
const NS_SERVER = `twoway-srv-${tag}`;
const NS_OTHER = `twoway-oth-${tag}`;
const SERVER_ADDRESS = '10.213.7.1';
const OTHER_ADDRESS = '10.213.7.2';
const SERVER_PORT = 8443;
const TARGET_PORT = 2222;

let tunnel: TestTunnel;
let server: Proc;
const targets: Proc[] = [];
let made = false;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function removeNamespaces(): void {
  for (const ns of [NS_SERVER, NS_OTHER]) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // not there
    }
  }
}

/** An echo target inside `ns` that prints "connection" for every connection it accepts. */
async function startTarget(ns: string, host: string): Promise<Proc> {
  const code = `
    const net = require('node:net');
    const server = net.createServer((s) => { process.stdout.write('connection\\n'); s.on('error', () => {}); s.pipe(s); });
    server.listen(${TARGET_PORT}, '${host}', () => process.stdout.write('listening\\n'));`;
  const proc = new Proc('ip', ['netns', 'exec', ns, process.execPath, '-e', code]);
  targets.push(proc);
  await proc.waitFor((p) => p.stdout.includes('listening'), `the target on ${host}:${TARGET_PORT} in ${ns}`);
  return proc;
}

/** `twoway connect` run on the other host, `input` on stdin. */
async function connectFromOtherHost(target: string, input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = new Proc('ip', ['netns', 'exec', NS_OTHER, process.execPath, TWOWAY_BIN, 'connect', '--config', tunnel.path('client.toml'), target], {
    env: { ...process.env, NO_COLOR: '1' },
  });
  proc.child.stdin?.end(input);
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  const { code } = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: proc.stdout, stderr: proc.stderr };
}

beforeAll(async () => {
  removeNamespaces();
  ip('netns', 'add', NS_SERVER);
  ip('netns', 'add', NS_OTHER);
  made = true;
  // Both ends are created inside our namespaces: no address ever exists outside them.
  ip('link', 'add', 'tw-srv', 'netns', NS_SERVER, 'type', 'veth', 'peer', 'name', 'tw-oth', 'netns', NS_OTHER);
  ip('-n', NS_SERVER, 'addr', 'add', `${SERVER_ADDRESS}/24`, 'dev', 'tw-srv');
  ip('-n', NS_OTHER, 'addr', 'add', `${OTHER_ADDRESS}/24`, 'dev', 'tw-oth');
  for (const [ns, dev] of [
    [NS_SERVER, 'tw-srv'],
    [NS_OTHER, 'tw-oth'],
  ] as const) {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'link', 'set', dev, 'up');
  }

  tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`10.0.0.0/8:${TARGET_PORT}`] }] });
  fs.writeFileSync(
    tunnel.path('server.toml'),
    `[server]\nlisten = "0.0.0.0:${SERVER_PORT}"\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\ncontrol_socket = "server.sock"\n`,
  );
  fs.writeFileSync(
    tunnel.path('client.toml'),
    `[client]\nserver_url = "ws://${SERVER_ADDRESS}:${SERVER_PORT}/twoway"\nserver_public_key = "${encodeKey(tunnel.serverKey.publicKey)}"\n` +
      `private_key_file = "alice.key"\n`,
  );
  await startTarget(NS_SERVER, SERVER_ADDRESS);
  await startTarget(NS_OTHER, OTHER_ADDRESS);
  server = new Proc('ip', ['netns', 'exec', NS_SERVER, process.execPath, TWOWAY_BIN, 'server', '--config', tunnel.path('server.toml')], {
    env: { ...process.env, NO_COLOR: '1' },
  });
  await server.waitForEvent('daemon.ready');
}, 30_000);

afterAll(async () => {
  // Every process this file started (the server, the targets, a connect left running), by PID.
  await stopAll();
  if (made) removeNamespaces();
  if (tunnel) fs.rmSync(tunnel.dir, { recursive: true, force: true });
});

describe('own addresses under listen = "0.0.0.0:8443" (server in a network namespace)', () => {
  it("a broad rule does not reach the server host's own interface address", async () => {
    const [own] = targets;
    const result = await connectFromOtherHost(`${SERVER_ADDRESS}:${TARGET_PORT}`, 'must not arrive');
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/not permitted/);
    const line = await server.waitForEvent('stream.refused', { target: `${SERVER_ADDRESS}:${TARGET_PORT}` });
    expect(line.reason).toBe('not-permitted');
    expect(own!.stdout).not.toContain('connection');
  });

  it('the same rule reaches the same port on another host', async () => {
    const result = await connectFromOtherHost(`${OTHER_ADDRESS}:${TARGET_PORT}`, 'hello from the other host');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('hello from the other host');
    await server.waitForEvent('stream.open', { target: `${OTHER_ADDRESS}:${TARGET_PORT}` });
  });
  it('a reload re-checks open streams with the own addresses too', async () => {
    const reload = async (allow: string[]): Promise<void> => {
      const before = server.logLines().filter((l) => l.event === 'config.reload').length;
      tunnel.writePeers([{ ...tunnel.peers[0]!, allow }]);
      server.kill('SIGHUP');
      await server.waitFor((p) => p.logLines().filter((l) => l.event === 'config.reload').length > before, 'the reload');
    };
    // A rule naming the own address exactly grants it.
    await reload([`${SERVER_ADDRESS}:${TARGET_PORT}`]);
    const target = `${SERVER_ADDRESS}:${TARGET_PORT}`;
    const open = new Proc('ip', ['netns', 'exec', NS_OTHER, process.execPath, TWOWAY_BIN, 'connect', '--config', tunnel.path('client.toml'), target], {
      env: { ...process.env, NO_COLOR: '1' },
    });
    open.child.stdin?.write('ping');
    await open.waitFor((p) => p.stdout === 'ping', 'the echo from the own address (named exactly)');
    // Back to the broad rule: the open stream is no longer permitted and is reset.
    await reload([`10.0.0.0/8:${TARGET_PORT}`]);
    const line = await server.waitForEvent('stream.reset', { target });
    expect(line.reason).toBe('not-permitted');
    const { code } = await open.exited;
    expect(code).not.toBe(0);
  });
});
