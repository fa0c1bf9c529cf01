import { describe, expect, it } from 'vitest';
import { ANNOUNCE_TARGET, MAX_ANNOUNCEMENT_BYTES, decodeRelayedTarget } from '../../../src/device/target.js';
import type { StreamRequest } from '../../../src/mux/stream-request.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { drain, pump } from '../../helpers/streams.js';
import { DeviceServer, opened, refusal, type Connected, type PeerSpec } from '../../helpers/device-harness.js';
import { waitUntil } from '../../helpers/wait.js';

const SPECS: PeerSpec[] = [
  { name: 'alice', devices: ['build1:*'] },
  { name: 'bob', devices: ['build2:ssh'] },
  { name: 'carol', devices: ['*:*'] },
  { name: 'build1', kind: 'device' },
  { name: 'build2', kind: 'device' },
];

/** An echo service on the device agent: accepts every relayed open and sends back what it reads. */
function echoAgent(seen: StreamRequest[] = [], accepted: MuxStream[] = []): (request: StreamRequest) => void {
  return (request) => {
    seen.push(request);
    const stream = request.accept();
    accepted.push(stream);
    stream.on('error', () => {});
    stream.pipe(stream);
  };
}

async function online(server: DeviceServer, name: string, services: string[], onRequest?: (r: StreamRequest) => void): Promise<Connected> {
  const device = server.connect(name, onRequest);
  await server.announce(device, services);
  return device;
}

describe('DeviceRouter: the server half of device endpoints', () => {
  it('relays a permitted open into the device: relayed target, bytes both ways, audit lines', async () => {
    const server = new DeviceServer(SPECS);
    const seen: StreamRequest[] = [];
    await online(server, 'build1', ['ssh', 'web'], echoAgent(seen));
    const alice = server.connect('alice');
    const stream = alice.agent.openStream('build1:ssh');
    await opened(stream);
    expect(decodeRelayedTarget(seen[0]!.target)).toEqual({ service: 'ssh', mode: 'e2e', user: 'alice', userKey: server.keyBase64('alice') });
    const back = drain(stream);
    const sent = await pump(stream, 1024 * 1024);
    expect((await back).hash).toBe(sent);
    await waitUntil(() => server.find('device.stream.close') !== undefined);
    expect(server.find('device.stream.open')).toMatchObject({ user: 'alice', device: 'build1', service: 'ssh', peer: 'alice' });
    expect(server.find('device.stream.close')).toMatchObject({
      user: 'alice',
      device: 'build1',
      service: 'ssh',
      bytesToDevice: 1024 * 1024,
      bytesFromDevice: 1024 * 1024,
      how: 'closed',
    });
    expect(typeof server.find('device.stream.close')?.durationMs).toBe('number');
    expect(server.router.status()[0]).toMatchObject({ name: 'build1', services: ['ssh', 'web'], streams: 0, fingerprint: server.keyBase64('build1') });
  });

  it('the SERVICE.DEVICE.twoway form routes the same way', async () => {
    const server = new DeviceServer(SPECS);
    const seen: StreamRequest[] = [];
    await online(server, 'build1', ['ssh'], echoAgent(seen));
    const stream = server.connect('alice').agent.openStream('ssh.build1.twoway:22');
    await opened(stream);
    expect(decodeRelayedTarget(seen[0]!.target)?.service).toBe('ssh');
    stream.destroy();
  });

  it('an offline device is refused at once with device-offline', async () => {
    const server = new DeviceServer(SPECS);
    const alice = server.connect('alice');
    const err = await refusal(alice.agent.openStream('build1:ssh'));
    expect(err.reason).toBe('device-offline');
    expect(err.message).toMatch(/device build1 is not connected$/);
    expect(server.find('stream.refused', { reason: 'device-offline', user: 'alice', device: 'build1' })).toBeDefined();
    // A name that is no device at all is just as offline.
    const none = await refusal(server.connect('carol').agent.openStream('build9:ssh'));
    expect(none.reason).toBe('device-offline');
  });

  it('a user the server does not permit is refused before the device hears of it', async () => {
    const server = new DeviceServer(SPECS);
    const device = await online(server, 'build1', ['ssh']);
    const err = await refusal(server.connect('bob').agent.openStream('build1:ssh'));
    expect(err.reason).toBe('not-permitted');
    expect(err.message).toMatch(/peer bob may not reach device build1 service ssh$/);
    expect(device.requests).toHaveLength(0);
    expect(server.find('stream.refused', { user: 'bob', reason: 'not-permitted' })).toBeDefined();
  });

  it('a device peer is held to its own devices list too', async () => {
    const server = new DeviceServer(SPECS);
    await online(server, 'build1', ['ssh']);
    const build2 = server.connect('build2');
    const err = await refusal(build2.agent.openStream('build1:ssh'));
    expect(err.reason).toBe('not-permitted');
  });

  it('a service the device did not announce is unreachable', async () => {
    const server = new DeviceServer(SPECS);
    const device = await online(server, 'build1', ['ssh']);
    const err = await refusal(server.connect('alice').agent.openStream('build1:postgres'));
    expect(err.reason).toBe('unreachable');
    expect(err.message).toMatch(/device build1 has no service postgres$/);
    expect(device.requests).toHaveLength(0);
  });

  it('a malformed device target is refused as not-permitted', async () => {
    const server = new DeviceServer(SPECS);
    const err = await refusal(server.connect('alice').agent.openStream('bad/name:ssh'));
    expect(err.reason).toBe('not-permitted');
  });

  it("the device's refusal reaches the user with the same reason and message", async () => {
    const server = new DeviceServer(SPECS);
    await online(server, 'build1', ['ssh'], (r) => r.reject('not-permitted', 'user alice may not use service ssh'));
    const err = await refusal(server.connect('alice').agent.openStream('build1:ssh'));
    expect(err.reason).toBe('not-permitted');
    expect(err.message).toMatch(/user alice may not use service ssh$/);
    await online(server, 'build1', ['ssh'], (r) => r.reject('connection-refused', 'service ssh: ECONNREFUSED'));
    const down = await refusal(server.connect('alice').agent.openStream('build1:ssh'));
    expect(down.reason).toBe('connection-refused');
    expect(down.message).toMatch(/ECONNREFUSED$/);
  });

  it("the device's refusal text travels as a field (detail) to the server and on to the user, whatever it looks like", async () => {
    const server = new DeviceServer(SPECS);
    const text = 'no (a) refused (limit): lines\nand colons: here';
    await online(server, 'build1', ['ssh'], (r) => r.reject('limit', text));
    const err = (await refusal(server.connect('alice').agent.openStream('build1:ssh'))) as Error & { reason?: string; detail?: string };
    expect(err.reason).toBe('limit');
    expect(err.detail).toBe(`device build1: ${text}`);
    expect(server.find('stream.refused', { device: 'build1', reason: 'limit' })?.detail).toBe(`device build1: ${text}`);
    // A refusal without text: the server says only that the device refused.
    await online(server, 'build1', ['ssh'], (r) => r.reject('not-permitted'));
    const bare = (await refusal(server.connect('alice').agent.openStream('build1:ssh'))) as Error & { detail?: string };
    expect(bare.detail).toBe('device build1: refused');
  });

  it('a user who gives up while the device decides cancels the device stream', async () => {
    const server = new DeviceServer(SPECS);
    const device = await online(server, 'build1', ['ssh']);
    const stream = server.connect('alice').agent.openStream('build1:ssh');
    stream.on('error', () => {});
    await waitUntil(() => device.requests.length === 1);
    stream.reset('cancel');
    await waitUntil(() => device.requests[0]!.cancelled, 'the device request to be cancelled', 5_000);
  });

  it('a device that goes away under an open: the user hears device-offline, not tunnel-closed', async () => {
    const server = new DeviceServer(SPECS);
    const device = await online(server, 'build1', ['ssh']);
    const pending = server.connect('alice').agent.openStream('build1:ssh');
    await waitUntil(() => device.requests.length === 1);
    const failed = refusal(pending);
    device.agent.close('normal');
    const err = await failed;
    expect(err.reason).toBe('device-offline');
    expect(err.message).toMatch(/device build1 is not connected$/);
  });

  it('a device that goes away mid-stream resets the user with device-offline, and is offline after', async () => {
    const server = new DeviceServer(SPECS);
    const device = await online(server, 'build1', ['ssh'], echoAgent());
    const alice = server.connect('alice');
    const stream = alice.agent.openStream('build1:ssh');
    await opened(stream);
    const failed = new Promise<Error & { reason?: string }>((r) => stream.once('error', r));
    device.agent.close('normal');
    expect((await failed).reason).toBe('device-offline');
    await waitUntil(() => server.router.status().length === 0);
    expect(server.find('device.offline', { device: 'build1' })).toBeDefined();
    expect(server.find('device.stream.close')).toMatchObject({ how: 'reset', reason: 'device-offline' });
    expect((await refusal(alice.agent.openStream('build1:ssh'))).reason).toBe('device-offline');
  });

  it('a newer session of the same device replaces the older one, which is closed', async () => {
    const server = new DeviceServer(SPECS);
    const first = await online(server, 'build1', ['ssh'], echoAgent());
    const alice = server.connect('alice');
    const stream = alice.agent.openStream('build1:ssh');
    await opened(stream);
    const failed = new Promise<Error & { reason?: string }>((r) => stream.once('error', r));
    const second = await online(server, 'build1', ['web'], echoAgent());
    expect(first.closes[0]?.code).toBe('replaced');
    expect((await failed).reason).toBe('device-offline');
    await waitUntil(() => first.agent.closed);
    // The old session's end does not unregister the new one.
    await new Promise((r) => setImmediate(r));
    expect(server.router.status().map((d) => d.services)).toEqual([['web']]);
    expect(server.router.isOnline('build1')).toBe(true);
    await opened(alice.agent.openStream('build1:web'));
    second.agent.close('normal');
  });

  it('announcements: only from devices, bounded, malformed ones ignored', async () => {
    const server = new DeviceServer(SPECS);
    const alice = server.connect('alice');
    const fromUser = alice.agent.openStream(ANNOUNCE_TARGET);
    expect((await refusal(fromUser)).reason).toBe('not-permitted');

    const device = await online(server, 'build1', ['ssh']);
    const big = device.agent.openStream(ANNOUNCE_TARGET);
    const reset = new Promise<Error & { reason?: string }>((r) => big.once('error', r));
    big.write(Buffer.alloc(MAX_ANNOUNCEMENT_BYTES + 4096, 0x20));
    expect((await reset).reason).toBe('limit');

    const junk = device.agent.openStream(ANNOUNCE_TARGET);
    junk.on('error', () => {});
    junk.end('{"services": ["no.dots"]}');
    await waitUntil(() => server.lines.some((l) => l.event === 'device.services' && typeof l.err === 'string'));
    expect(server.router.status()[0]?.services).toEqual(['ssh']);
  });

  it('reload: a user whose devices list no longer covers a relay is reset at once, both sides', async () => {
    const server = new DeviceServer(SPECS);
    const seen: StreamRequest[] = [];
    const accepted: MuxStream[] = [];
    const device = await online(server, 'build1', ['ssh', 'web'], echoAgent(seen, accepted));
    const alice = server.connect('alice');
    const ssh = alice.agent.openStream('build1:ssh');
    const web = alice.agent.openStream('build1:web');
    await Promise.all([opened(ssh), opened(web)]);
    const userSide = new Promise<Error & { reason?: string }>((r) => ssh.once('error', r));
    const deviceStream = accepted[seen.findIndex((r) => decodeRelayedTarget(r.target)?.service === 'ssh')]!;
    const deviceSide = new Promise<Error & { reason?: string }>((r) => deviceStream.once('error', r));
    expect(server.reload([{ name: 'alice', devices: ['build1:web'] }, ...SPECS.slice(1)])).toBe(1);
    expect((await userSide).reason).toBe('not-permitted');
    expect((await deviceSide).reason).toBe('not-permitted');
    // web is still permitted and still carries bytes.
    const back = drain(web);
    const sent = await pump(web, 64 * 1024);
    expect((await back).hash).toBe(sent);
    expect(server.router.status()[0]?.streams).toBe(0);
    device.agent.close('normal');
  });

  it('reload: a device renamed or made a user is dropped and its session closed', async () => {
    const server = new DeviceServer(SPECS);
    const device = await online(server, 'build1', ['ssh'], echoAgent());
    const stream = server.connect('alice').agent.openStream('build1:ssh');
    await opened(stream);
    const failed = new Promise<Error & { reason?: string }>((r) => stream.once('error', r));
    const key = server.key('build1');
    expect(server.reload([...SPECS.filter((s) => s.name !== 'build1'), { name: 'build1b', kind: 'device', key }])).toBe(1);
    expect((await failed).reason).toBe('device-offline');
    expect(device.closes).toHaveLength(1);
    expect(server.router.status()).toEqual([]);
  });

  it('an open queued for a device is checked again at its turn and when the device answers: a reload that revoked the grant meanwhile refuses it', async () => {
    const server = new DeviceServer(SPECS);
    // A device that answers nothing until told: the opens in flight reach their cap, the rest queue.
    const held: StreamRequest[] = [];
    const device = await online(server, 'build1', ['ssh'], (r) => held.push(r));
    const alice = server.connect('alice');
    const streams = Array.from({ length: 40 }, () => alice.agent.openStream('build1:ssh'));
    const ends = streams.map((s) => refusal(s).catch(() => undefined));
    await waitUntil(() => held.length === 32, 'the opens in flight to reach the cap', 5_000);
    expect(server.router.status()[0]).toMatchObject({ streams: 0 });
    server.reload(SPECS.map((p) => (p.name === 'alice' ? { ...p, devices: [] } : p)));
    for (const r of held) {
      const s = r.accept();
      s.on('error', () => {});
    }
    const reasons = (await Promise.all(ends)).map((e) => e?.reason);
    expect(reasons).toEqual(Array.from({ length: 40 }, () => 'not-permitted'));
    expect(held).toHaveLength(32); // the queued ones never reached the device
    expect(device.handle.mux.closed).toBe(false);
  });
});
