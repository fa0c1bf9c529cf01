/**
 * `twoway connect` through a running client daemon (its control socket): the stream's half-close
 * and its failures must cross the hop from the daemon to the `twoway connect` process as what
 * they are. Input then end of input, and the whole answer after it (`ssh host cmd < file`); a
 * target that resets mid-answer is a failure with the reason, never a clean but short answer.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TWOWAY_BIN } from '../helpers/processes.js';
import { TestTunnel, startAnsweringSink } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

const RESPONSE_BYTES = 8 * 1024 * 1024;
const response = randomBytes(RESPONSE_BYTES);
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

let tunnel: TestTunnel;
let sink: net.Server;
let resetter: net.Server;
let sinkDigests: string[];
let resetterConnections = 0;
/** Echoes; at the client's end of input it waits for the test (`endHeld`) to end its side. */
let holder: net.Server;
let holderPort: number;
const held: net.Socket[] = [];
let refusedPort: number;

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/** Runs `twoway connect` with `input` on stdin; stdout is kept as bytes. */
function connect(target: string, input: Buffer, config = tunnel.path('client-alice.toml')): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TWOWAY_BIN, 'connect', '--config', config, target], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

let sinkPort: number;
let resetterPort: number;

beforeAll(async () => {
  // Hashes all input; after the end of input, answers RESPONSE_BYTES and ends.
  ({ server: sink, port: sinkPort, digests: sinkDigests } = await startAnsweringSink(response));
  // Answers part of a response, pauses, then resets the connection (half-open: our end of input
  // does not close it first). The pause is the target's behaviour, not a wait in the test: the
  // answer is read before the RST arrives, which is the case where the daemon's end of input has
  // already gone out and a reset still has to reach `twoway connect`.
  resetter = net.createServer({ allowHalfOpen: true }, (socket) => {
    resetterConnections++;
    socket.on('error', () => {});
    socket.write(response.subarray(0, 256 * 1024), () => setTimeout(() => socket.resetAndDestroy(), 50));
  });
  resetterPort = await listen(resetter);
  holder = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.on('data', (c: Buffer) => socket.write(c));
    socket.on('end', () => held.push(socket));
  });
  holderPort = await listen(holder);
  // Listening, but not in alice's rules: the server refuses it.
  refusedPort = await listen(net.createServer((s) => s.destroy()));
  tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${sinkPort},${resetterPort},${holderPort}`] }] });
  await tunnel.startServer();
  await tunnel.startClient('alice');
  await tunnel.server!.waitForEvent('auth.accepted');
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  sink?.close();
  resetter?.close();
  holder?.close();
});

const serverLines = (event: string): Array<Record<string, unknown>> => tunnel.server!.logLines().filter((l) => l.event === event);

describe('twoway connect through the client daemon', () => {
  it('carries the input, its end, and the whole answer after it', async () => {
    const input = randomBytes(2 * 1024 * 1024);
    const r = await connect(`127.0.0.1:${sinkPort}`, input);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.length).toBe(RESPONSE_BYTES);
    expect(sha256(r.stdout)).toBe(sha256(response));
    expect(sinkDigests).toContain(sha256(input));
    // It went through the daemon's session, not a session of its own.
    expect(tunnel.server!.logLines().filter((l) => l.event === 'auth.accepted')).toHaveLength(1);
  });

  it('a target that resets mid-answer fails `twoway connect` with the reason (not a clean short answer)', async () => {
    const r = await connect(`127.0.0.1:${resetterPort}`, Buffer.alloc(0));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/reset/);
    expect(r.stdout.length).toBeLessThan(RESPONSE_BYTES);
  });
});

describe('a failure on the daemon path is final (issue 12 item 6)', () => {
  it('a target reset: non-zero exit, one connection to the target, no session of its own', async () => {
    const sessions = serverLines('auth.accepted').length;
    const before = resetterConnections;
    const r = await connect(`127.0.0.1:${resetterPort}`, Buffer.alloc(0));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/reset/);
    expect(resetterConnections - before).toBe(1);
    expect(serverLines('auth.accepted').length).toBe(sessions);
  });

  it('a refused target: exit 5, exactly one stream.refused on the server, no session of its own', async () => {
    const sessions = serverLines('auth.accepted').length;
    const r = await connect(`127.0.0.1:${refusedPort}`, Buffer.alloc(0));
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/not permitted/);
    await tunnel.server!.waitForEvent('stream.refused', { target: `127.0.0.1:${refusedPort}` });
    // The refusal went out once; a retry over a session of its own would add a second line.
    const again = await connect(`127.0.0.1:${sinkPort}`, Buffer.from('x'));
    expect(again.code).toBe(0);
    expect(serverLines('stream.refused').filter((l) => l.target === `127.0.0.1:${refusedPort}`)).toHaveLength(1);
    expect(serverLines('auth.accepted').length).toBe(sessions);
  });
});

describe("ssh's end of a ProxyCommand: stdin's end, then SIGHUP (issue 12 item 6)", () => {
  /** Starts `twoway connect`, gets an answer, ends stdin, and hangs up once the target saw the end. */
  async function hangUpAfterAnswer(config: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
    const child = spawn(process.execPath, [TWOWAY_BIN, 'connect', '--config', config, `127.0.0.1:${holderPort}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    let stderr = '';
    let out = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stdin.on('error', () => {});
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    const heldBefore = held.length;
    child.stdin.write('hello\n');
    await waitUntil(() => out === 'hello\n', 'the echo through twoway connect', 10_000, exited);
    child.stdin.end();
    await waitUntil(() => held.length > heldBefore, 'the end of input at the target', 10_000, exited);
    // What ssh does: stdout is no longer read, SIGHUP follows; the target ends its side after.
    child.stdout.destroy();
    child.kill('SIGHUP');
    held[held.length - 1]!.end();
    const result = await exited;
    clearTimeout(timer);
    return { ...result, stderr };
  }

  it('through the daemon: exit 0, nothing on stderr, the stream logged as closed (not reset)', async () => {
    const closes = serverLines('stream.close').length;
    const r = await hangUpAfterAnswer(tunnel.path('client-alice.toml'));
    expect(r, r.stderr).toMatchObject({ code: 0, signal: null });
    expect(r.stderr).toBe('');
    await waitUntil(() => serverLines('stream.close').length > closes, 'the stream.close line');
    expect(serverLines('stream.close').slice(closes)).toMatchObject([{ target: `127.0.0.1:${holderPort}`, how: 'closed' }]);
    expect(serverLines('stream.reset').filter((l) => l.target === `127.0.0.1:${holderPort}`)).toEqual([]);
  });

  it('over a session of its own (no daemon): exit 0, the stream logged as closed', async () => {
    const own = tunnel.path('client-alone.toml');
    fs.writeFileSync(
      own,
      fs.readFileSync(tunnel.path('client-alice.toml'), 'utf8').replace('control_socket = "client-alice.sock"', 'control_socket = "nobody-listens.sock"'),
    );
    // A stale socket (bound, its process gone): connection refused, so no daemon answers.
    expect(spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', tunnel.path('nobody-listens.sock')]).status).toBe(
      0,
    );
    const closes = serverLines('stream.close').length;
    const sessions = serverLines('auth.accepted').length;
    const r = await hangUpAfterAnswer(own);
    expect(serverLines('auth.accepted').length).toBe(sessions + 1);
    expect(r, r.stderr).toMatchObject({ code: 0, signal: null });
    await waitUntil(() => serverLines('stream.close').length > closes, 'the stream.close line');
    expect(serverLines('stream.close').slice(closes)).toMatchObject([{ target: `127.0.0.1:${holderPort}`, how: 'closed' }]);
  });
});
