/**
 * `twoway connect` through a running client daemon (its control socket): the stream's half-close
 * and its failures must cross the hop from the daemon to the `twoway connect` process as what
 * they are. Input then end of input, and the whole answer after it (`ssh host cmd < file`); a
 * target that resets mid-answer is a failure with the reason, never a clean but short answer.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TWOWAY_BIN } from '../helpers/processes.js';
import { TestTunnel, startAnsweringSink } from '../helpers/tunnel.js';

const RESPONSE_BYTES = 8 * 1024 * 1024;
const response = randomBytes(RESPONSE_BYTES);
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

let tunnel: TestTunnel;
let sink: net.Server;
let resetter: net.Server;
let sinkDigests: string[];

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/** Runs `twoway connect` with `input` on stdin; stdout is kept as bytes. */
function connect(target: string, input: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TWOWAY_BIN, 'connect', '--config', tunnel.path('client-alice.toml'), target], { stdio: ['pipe', 'pipe', 'pipe'] });
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
    socket.on('error', () => {});
    socket.write(response.subarray(0, 256 * 1024), () => setTimeout(() => socket.resetAndDestroy(), 50));
  });
  resetterPort = await listen(resetter);
  tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${sinkPort},${resetterPort}`] }] });
  await tunnel.startServer();
  await tunnel.startClient('alice');
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  sink?.close();
  resetter?.close();
});

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
