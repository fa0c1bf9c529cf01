import { describe, expect, it } from 'vitest';
import { relayStreams, type RelayResult } from '../../../src/daemon/stream-relay.js';
import { DeviceRules } from '../../../src/policy/device-rules.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { drain, pump, sessionPair, until } from '../mux/helpers.js';

/** user client -> (server: accepts, relays) -> device: a relay between two accepted/opened mux streams. */
async function relayed(): Promise<{ user: MuxStream; device: MuxStream; done: Promise<RelayResult>; relay: ReturnType<typeof relayStreams> }> {
  const userSide = sessionPair();
  const deviceSide = sessionPair();
  const user = userSide.client.openStream('build1:ssh');
  await until(() => userSide.requests.length === 1);
  const toDevice = deviceSide.client.openStream('svc=ssh');
  await until(() => deviceSide.requests.length === 1);
  const device = deviceSide.requests[0]!.accept();
  await new Promise((r) => toDevice.once('open', r));
  const fromUser = userSide.requests[0]!.accept();
  let resolve!: (r: RelayResult) => void;
  const done = new Promise<RelayResult>((r) => (resolve = r));
  const relay = relayStreams(fromUser, toDevice, { onDone: resolve });
  await new Promise((r) => user.once('open', r));
  return { user, device, done, relay };
}

describe('relayStreams', () => {
  it('carries bytes both ways with backpressure and each half-close, and counts them', async () => {
    const { user, device, done } = await relayed();
    const up = drain(device);
    const down = drain(user);
    const [upHash, downHash] = await Promise.all([pump(user, 3 * 1024 * 1024), pump(device, 2 * 1024 * 1024)]);
    expect((await up).hash).toBe(upHash);
    expect((await down).hash).toBe(downHash);
    const result = await done;
    expect(result).toMatchObject({ aToB: 3 * 1024 * 1024, bToA: 2 * 1024 * 1024, how: 'closed' });
  });

  it('a reset on one side resets the other with its reason', async () => {
    const { user, device, done } = await relayed();
    const failed = new Promise<Error & { reason?: string }>((r) => user.once('error', r));
    device.reset('connection-refused');
    expect((await failed).reason).toBe('connection-refused');
    expect((await done).how).toBe('reset');
  });

  it('reset() from the server cuts both sides', async () => {
    const { user, device, relay, done } = await relayed();
    const a = new Promise<Error & { reason?: string }>((r) => user.once('error', r));
    const b = new Promise<Error & { reason?: string }>((r) => device.once('error', r));
    relay.reset('not-permitted');
    expect((await a).reason).toBe('not-permitted');
    expect((await b).reason).toBe('not-permitted');
    expect(await done).toMatchObject({ how: 'reset', reason: 'not-permitted' });
  });
});

describe('DeviceRules', () => {
  it('denies by default and matches * per part', () => {
    expect(new DeviceRules([]).allows('build1', 'ssh')).toBe(false);
    const rules = new DeviceRules(['build1:ssh', '*:postgres', 'lab:*']);
    expect(rules.allows('build1', 'ssh')).toBe(true);
    expect(rules.allows('build1', 'web')).toBe(false);
    expect(rules.allows('anything', 'postgres')).toBe(true);
    expect(rules.allows('lab', 'web')).toBe(true);
    expect(rules.allows('lab2', 'web')).toBe(false);
  });
});
