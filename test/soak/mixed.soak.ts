/**
 * Soak (`npm run soak`): a random mix of stream lives through real daemons. Invariants: whatever
 * a stream delivers is a prefix of what was sent (nothing altered, reordered or duplicated); a
 * stream whose target echoes everything and ends ends cleanly with every byte; afterwards no
 * stream is left open on the server and the tunnel still works.
 *
 * Not asserted: that a target's reset always reaches the application as an error. libuv reports
 * a peer's RST that arrives behind unread data as a plain end of stream (on POLLHUP after a
 * partial read it signals EOF without reading the pending ECONNRESET). The daemons probe for that
 * with a zero-length write before passing an end on (src/forward/pipe.ts,
 * test/integration/target-reset.test.ts), but the probe needs a socket whose writing side is still
 * open, and this soak's application is itself a Node reader with the same blind spot: a direct
 * Node client (no tunnel) sees a clean end in 2-3 of 8 target resets, a Python client never. So
 * clean ends after a target reset are counted and printed beside the server's view.
 */
import { randomBytes, randomInt } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTwoway } from '../helpers/processes.js';
import { TestTunnel, resetAfterHeader, startResettingEchoTarget } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

const ROUNDS = Math.min(500, Number(process.env.SOAK_ROUNDS ?? 15));
const PARALLEL = Math.min(64, Number(process.env.SOAK_PARALLEL ?? 16));
const MAX_BYTES = 2 * 1024 * 1024;

let tunnel: TestTunnel;
let target: net.Server;
let forwardPort: number;
let cleanAfterTargetReset = 0;

beforeAll(async () => {
  let port: number;
  ({ server: target, port } = await startResettingEchoTarget());
  tunnel = new TestTunnel({
    peers: [{ name: 'alice', allow: [`127.0.0.1:${port}`] }],
    serverLimits: 'max_streams_per_session = 1024\nstream_open_rate = 5000\nstream_open_burst = 5000\ndials_in_flight = 512',
    clientLimits: 'max_streams_per_session = 1024',
  });
  await tunnel.startServer();
  const client = await tunnel.startClient('alice', `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${port}"\n`);
  [forwardPort] = TestTunnel.listenerPorts(client) as [number];
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  target?.close();
});

type Plan = { kind: 'clean' | 'target-reset' | 'app-reset'; bytes: number; cutAt: number };

/** One stream's life; returns a violation of the invariant, or undefined. */
function life(plan: Plan): Promise<string | undefined> {
  return new Promise((resolve) => {
    const data = randomBytes(plan.bytes);
    const header = resetAfterHeader(plan.kind === 'target-reset' ? plan.cutAt : undefined);
    const socket = net.connect({ port: forwardPort, host: '127.0.0.1', allowHalfOpen: true });
    const got: Buffer[] = [];
    let received = 0;
    let error: string | undefined;
    socket.on('data', (c: Buffer) => {
      got.push(c);
      received += c.length;
      if (plan.kind === 'app-reset' && received >= plan.cutAt) socket.resetAndDestroy();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => {
      const all = Buffer.concat(got);
      const prefixOk = all.equals(data.subarray(0, all.length));
      if (!prefixOk) return resolve(`${plan.kind}: bytes differ from what was sent (${all.length} received)`);
      if (plan.kind === 'clean') {
        if (error !== undefined) return resolve(`clean: failed with ${error} after ${all.length} of ${data.length}`);
        if (all.length !== data.length) return resolve(`clean: ended with ${all.length} of ${data.length}`);
        return resolve(undefined);
      }
      if (plan.kind === 'target-reset' && error === undefined && all.length < data.length) {
        cleanAfterTargetReset++;
      }
      resolve(undefined);
    });
    // A failure while sending destroys the socket (reported through 'error'), never an unhandled rejection.
    const send = async (): Promise<void> => {
      socket.write(header);
      let at = 0;
      while (at < data.length && !socket.destroyed) {
        const n = Math.min(data.length - at, randomInt(1, 256 * 1024));
        const ok = socket.write(data.subarray(at, at + n));
        at += n;
        if (!ok) await new Promise((r) => socket.once('drain', r).once('close', r));
      }
      if (!socket.destroyed) socket.end();
    };
    socket.once('connect', () => {
      send().catch((e: Error) => socket.destroy(e));
    });
  });
}

const planCounts: Record<string, number> = {};
function randomPlan(): Plan {
  const bytes = randomInt(1, MAX_BYTES);
  const roll = randomInt(0, 10);
  const kind: Plan['kind'] = roll < 6 ? 'clean' : roll < 8 ? 'target-reset' : 'app-reset';
  planCounts[kind] = (planCounts[kind] ?? 0) + 1;
  return { kind, bytes, cutAt: randomInt(0, bytes) };
}

describe('soak: a random mix of clean, target-reset and application-reset streams', () => {
  it(`${ROUNDS} rounds of ${PARALLEL}: data intact, clean echoes complete, nothing left open`, async () => {
    const violations: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const results = await Promise.all(Array.from({ length: PARALLEL }, () => life(randomPlan())));
      for (const r of results) if (r !== undefined) violations.push(`round ${round}: ${r}`);
    }
    console.log(`target resets that ended cleanly at the application: ${cleanAfterTargetReset}`);
    const hows: Record<string, number> = {};
    for (const l of tunnel.server!.logLines()) if (l.event === 'stream.close') hows[String(l.how)] = (hows[String(l.how)] ?? 0) + 1;
    console.log('server stream.close how', JSON.stringify(hows), 'plans', JSON.stringify(planCounts));
    expect(violations).toEqual([]);
    const streams = async (): Promise<number> => {
      const r = await runTwoway(['status', '--json', '--socket', tunnel.path('server.sock')]);
      const status = JSON.parse(r.stdout) as { sessions: Array<{ streams: number }> };
      return status.sessions.reduce((n, s) => n + s.streams, 0);
    };
    await waitUntil(async () => (await streams()) === 0, 'every stream on the server to be gone', 10_000);
    // Still works.
    expect(await life({ kind: 'clean', bytes: 100_000, cutAt: 0 })).toBeUndefined();
  }, 600_000);
});
