/**
 * serveStreamRequest in one process, with a real TCP target on loopback and a stand-in for the
 * mux's StreamRequest: the rules are read when the open arrives, when its slot is taken and once
 * more after the dial connected (issue 13, item 2); a cancelled queued open does not stall the
 * queue (item 12).
 */
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DialLimiter } from '../../../src/forward/dial-limiter.js';
import type { ReasonCode } from '../../../src/mux/reason.js';
import type { StreamRequest } from '../../../src/mux/stream-request.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { compileRules } from '../../../src/policy/access-rules.js';
import { DeviceRules } from '../../../src/policy/device-rules.js';
import type { ServerPeer } from '../../../src/policy/peer-table.js';
import { recheckPendingOpens, serveStreamRequest, type StreamOwner } from '../../../src/server/target-streams.js';
import { waitUntil } from '../../helpers/wait.js';

let target: net.Server;
let port: number;
const seen = { connections: 0, bytes: 0 };

beforeAll(async () => {
  target = net.createServer((s) => {
    seen.connections++;
    s.on('error', () => {});
    s.on('data', (c: Buffer) => (seen.bytes += c.length));
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  port = (target.address() as net.AddressInfo).port;
});

afterAll(() => target.close());

const peer = (allow: string[]): ServerPeer => ({
  name: 'alice',
  publicKey: new Uint8Array(32),
  kind: 'user',
  rules: compileRules(allow),
  devices: new DeviceRules([]),
  reverse: [],
});

/** Stands in for the mux's pending open: records the decision. */
class FakeRequest implements StreamRequest {
  readonly id = 1;
  readonly #abort = new AbortController();
  rejected: { reason: ReasonCode; message: string } | undefined;
  accepted = false;
  constructor(readonly target: string) {}
  get cancelled(): boolean {
    return this.#abort.signal.aborted;
  }
  get signal(): AbortSignal {
    return this.#abort.signal;
  }
  cancel(): void {
    this.#abort.abort();
  }
  accept(): MuxStream {
    this.accepted = true;
    throw new Error('accept is not expected in these tests');
  }
  reject(reason: ReasonCode, message = ''): void {
    this.rejected ??= { reason, message };
  }
}

const owner = (maxInFlight = 4): StreamOwner => ({ streams: new Set(), dials: new DialLimiter({ maxInFlight }), pending: new Set() });
const silent = pino({ level: 'silent' });

describe('serveStreamRequest', () => {
  it('checks the rules in force once more after the dial connected, before accepting', async () => {
    const before = { ...seen };
    const handle = owner();
    const request = new FakeRequest(`127.0.0.1:${port}`);
    const granted = peer([`127.0.0.1:${port}`]);
    let calls = 0;
    // On arrival and at the slot the grant holds; by the time the dial has connected it is gone.
    const currentPeer = (): ServerPeer => (++calls <= 2 ? granted : peer([]));
    serveStreamRequest({ handle, currentPeer, request, dialTimeoutMs: 5_000, ownAddresses: () => [], logger: silent });
    await waitUntil(() => request.rejected !== undefined, 'the refusal', 5_000);
    expect(request.rejected?.reason).toBe('not-permitted');
    expect(request.accepted).toBe(false);
    expect(calls).toBe(3);
    expect(handle.pending.size).toBe(0);
    expect(handle.dials.inFlight).toBe(0);
    // The dial had connected; it was reset before a byte moved.
    await waitUntil(() => seen.connections > before.connections, 'the connection', 5_000);
    expect(seen.bytes).toBe(before.bytes);
  });

  it('refuses on arrival without taking a slot, and at the slot when the grant went while queued', async () => {
    const handle = owner(1);
    const denied = new FakeRequest(`127.0.0.3:${port}`);
    serveStreamRequest({
      handle,
      currentPeer: () => peer([`127.0.0.1:${port}`]),
      request: denied,
      dialTimeoutMs: 5_000,
      ownAddresses: () => [],
      logger: silent,
    });
    expect(denied.rejected?.reason).toBe('not-permitted');
    expect(handle.dials.inFlight).toBe(0);

    // Hold the one slot with a dial that cannot finish (the limiter's own run), then queue an open.
    let release!: () => void;
    const holding = handle.dials.run(() => new Promise<void>((r) => (release = r)));
    let current = peer([`127.0.0.1:${port}`]);
    const queued = new FakeRequest(`127.0.0.1:${port}`);
    serveStreamRequest({ handle, currentPeer: () => current, request: queued, dialTimeoutMs: 5_000, ownAddresses: () => [], logger: silent });
    expect(handle.dials.queued).toBe(1);
    current = peer([]); // changed without a reload being told: the slot's check still sees it
    const connectionsBefore = seen.connections;
    await new Promise((r) => setImmediate(r));
    release();
    await holding;
    await waitUntil(() => queued.rejected !== undefined, 'the refusal at the slot', 5_000);
    expect(queued.rejected?.reason).toBe('not-permitted');
    expect(handle.dials.inFlight).toBe(0);
    // Refused at the slot: never dialed (a connection would show up before the refusal).
    expect(seen.connections).toBe(connectionsBefore);
  });

  it('a reload refuses queued opens no longer permitted; a cancelled one leaves the queue; the rest dial', async () => {
    const handle = owner(1);
    let release!: () => void;
    const holding = handle.dials.run(() => new Promise<void>((r) => (release = r)));
    const grant = peer([`127.0.0.1:${port}`, `127.0.0.2:${port}`]);
    let current = grant;
    const open = (t: string): FakeRequest => {
      const r = new FakeRequest(t);
      serveStreamRequest({ handle, currentPeer: () => current, request: r, dialTimeoutMs: 5_000, ownAddresses: () => [], logger: silent });
      return r;
    };
    const revoked = open(`127.0.0.2:${port}`);
    const cancelled = open(`127.0.0.1:${port}`);
    const kept = open(`127.0.0.1:${port}`);
    expect(handle.dials.queued).toBe(3);
    cancelled.cancel();
    expect(handle.dials.queued).toBe(2);
    current = peer([`127.0.0.1:${port}`]);
    expect(recheckPendingOpens(handle, current, [])).toBe(1);
    expect(revoked.rejected?.reason).toBe('not-permitted');
    expect(handle.dials.queued).toBe(1);
    const before = seen.connections;
    await new Promise((r) => setImmediate(r));
    release();
    await holding;
    // The kept open dials (its accept throws in this stand-in, which serveStreamRequest handles).
    await waitUntil(() => kept.accepted, 'the kept open to dial and be accepted', 5_000);
    await waitUntil(() => seen.connections === before + 1, 'one connection: the kept open', 5_000);
    expect(cancelled.rejected).toBeUndefined();
    expect(handle.dials.inFlight).toBe(0);
  });
});
