/**
 * serveStream, the one dial -> check -> accept -> pipe of the server's target streams and the
 * device agent's services: real dials to loopback targets, an in-memory stream pair standing in
 * for the accepted tunnel stream. The order is the contract: no accept before the dial connected
 * and passed the re-check; a refusal carries the dial's reason; an open nobody waits for any more
 * is neither accepted nor refused.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { dialTarget, type Dialed } from '../../../src/forward/dial-target.js';
import type { PipeResult } from '../../../src/forward/pipe.js';
import { serveStream, type ServeOptions } from '../../../src/forward/serve-stream.js';
import type { ReasonCode } from '../../../src/mux/reason.js';
import { compileRules } from '../../../src/policy/access-rules.js';
import { readAll, streamPair, tcpServer } from '../../helpers/fake-opener.js';
import { waitUntil } from '../../helpers/wait.js';
import { refusingPort } from '../../helpers/ports.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const loopback = compileRules(['127.0.0.0/8:*']);

/** What one serveStream call did, in order. */
interface Trace {
  readonly steps: string[];
  refused?: { reason: ReasonCode; message: string };
  opened?: { stream: Duplex; dialed: Dialed };
  closed?: PipeResult;
}

function serve(dialing: Promise<Dialed | undefined>, near: Duplex, over: Partial<ServeOptions<Duplex>> = {}): Trace {
  const trace: Trace = { steps: [] };
  serveStream<Duplex>({
    dialing: dialing.then((d) => {
      trace.steps.push('dialed');
      return d;
    }),
    settled: () => false,
    accept: () => {
      trace.steps.push('accept');
      return near;
    },
    refuse: (reason, message) => {
      trace.steps.push('refuse');
      trace.refused = { reason, message };
    },
    onOpen: (stream, dialed) => {
      trace.steps.push('open');
      trace.opened = { stream, dialed };
      return (result) => {
        trace.steps.push('close');
        trace.closed = result;
      };
    },
    ...over,
  });
  return trace;
}

/** A target that records what it receives and how its connection ended. */
async function recordingTarget(reply?: Buffer): Promise<{ port: number; got: () => Buffer; ended: () => string | undefined; connections: () => number }> {
  const chunks: Buffer[] = [];
  let ended: string | undefined;
  let connections = 0;
  const t = await tcpServer((s: net.Socket) => {
    connections++;
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      ended ??= 'end';
      if (reply) s.end(reply);
    });
    s.on('error', (err: NodeJS.ErrnoException) => (ended ??= err.code ?? 'error'));
  });
  cleanups.push(t.close);
  return { port: t.port, got: () => Buffer.concat(chunks), ended: () => ended, connections: () => connections };
}

describe('serveStream', () => {
  it('accepts only after the dial connected, then pipes both ways and reports the close once', async () => {
    const down = randomBytes(300_000);
    const target = await recordingTarget(down);
    const [near, far] = streamPair();
    const trace = serve(dialTarget(`127.0.0.1:${target.port}`, { rules: loopback }), near);
    expect(trace.steps).toEqual([]);
    await waitUntil(() => trace.opened !== undefined, 'the open', 5_000);
    expect(trace.steps).toEqual(['dialed', 'accept', 'open']);
    expect(trace.opened?.stream).toBe(near);
    expect(trace.opened?.dialed.port).toBe(target.port);
    const up = randomBytes(200_000);
    const back = readAll(far);
    far.end(up);
    expect((await back).equals(down)).toBe(true);
    await waitUntil(() => trace.closed !== undefined, 'the close', 5_000);
    expect(target.got().equals(up)).toBe(true);
    expect(trace.closed).toMatchObject({ how: 'closed', bytesFromSocket: down.length, bytesToSocket: up.length });
    expect(trace.steps).toEqual(['dialed', 'accept', 'open', 'close']);
  });

  it('a failed dial is a refusal with the dial reason and the owner message; nothing is accepted', async () => {
    const [near] = streamPair();
    const port = await refusingPort();
    const trace = serve(dialTarget(`127.0.0.1:${port}`, { rules: loopback }), near, { dialFailure: (err) => `service ssh: ${err.message}` });
    await waitUntil(() => trace.refused !== undefined, 'the refusal', 5_000);
    expect(trace.refused).toEqual({ reason: 'connection-refused', message: `service ssh: 127.0.0.1:${port}: connection refused` });
    expect(trace.steps).toEqual(['refuse']);
  });

  it('a failure without a reason is refused with error and its own message', async () => {
    const [near] = streamPair();
    const trace = serve(Promise.reject(new Error('no slot')), near);
    await waitUntil(() => trace.refused !== undefined, 'the refusal', 5_000);
    expect(trace.refused).toEqual({ reason: 'error', message: 'no slot' });
  });

  it('a re-check that fails after the connect refuses with not-permitted and resets the target before a byte moves', async () => {
    const target = await recordingTarget();
    const [near] = streamPair();
    let checked: Dialed | undefined;
    const trace = serve(dialTarget(`127.0.0.1:${target.port}`, { rules: loopback }), near, {
      recheck: (dialed) => {
        checked = dialed;
        return 'revoked during the dial';
      },
    });
    await waitUntil(() => trace.refused !== undefined, 'the refusal', 5_000);
    expect(trace.refused).toEqual({ reason: 'not-permitted', message: 'revoked during the dial' });
    expect(checked?.address).toBe('127.0.0.1');
    expect(trace.steps).toEqual(['dialed', 'refuse']);
    // Reset, not a clean end: the service never takes a refused open for a finished session.
    await waitUntil(() => target.ended() !== undefined, 'the target to see the end', 5_000);
    expect(target.ended()).toBe('ECONNRESET');
    expect(target.got().length).toBe(0);
  });

  it('an open settled while dialing is neither accepted nor refused, and its socket is closed', async () => {
    const target = await recordingTarget();
    const [near] = streamPair();
    let settled = false;
    const trace = serve(
      dialTarget(`127.0.0.1:${target.port}`, { rules: loopback }).then((d) => {
        settled = true; // the user gave up just as the dial connected
        return d;
      }),
      near,
      { settled: () => settled },
    );
    await waitUntil(() => target.ended() !== undefined, 'the target to see the close', 5_000);
    expect(trace.steps).toEqual(['dialed']);
  });

  it('an open settled before its dial failed is not refused again', async () => {
    const [near] = streamPair();
    const port = await refusingPort();
    let failed = false;
    const trace = serve(
      dialTarget(`127.0.0.1:${port}`, { rules: loopback }).catch((err: unknown) => {
        failed = true;
        throw err;
      }),
      near,
      { settled: () => true },
    );
    await waitUntil(() => failed, 'the dial to fail', 5_000);
    await new Promise((r) => setImmediate(r));
    expect(trace.steps).toEqual([]);
  });

  it('an accept that throws (cancelled at the last moment) closes the socket and opens nothing', async () => {
    const target = await recordingTarget();
    const [near] = streamPair();
    const trace = serve(dialTarget(`127.0.0.1:${target.port}`, { rules: loopback }), near, {
      accept: () => {
        trace.steps.push('accept');
        throw new Error('open cancelled');
      },
    });
    await waitUntil(() => target.ended() !== undefined, 'the target to see the close', 5_000);
    expect(trace.steps).toEqual(['dialed', 'accept']);
    expect(target.connections()).toBe(1);
  });

  it('a dialer that settled the open itself (undefined) leaves everything alone', async () => {
    const [near] = streamPair();
    const trace = serve(Promise.resolve(undefined), near);
    await new Promise((r) => setImmediate(r));
    expect(trace.steps).toEqual(['dialed']);
  });
});
