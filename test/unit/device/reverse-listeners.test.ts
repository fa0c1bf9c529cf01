import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { MAX_REVERSE_CONNECTIONS_PER_SOURCE } from '../../../src/device/reverse-listeners.js';
import { decodeRelayedTarget } from '../../../src/device/target.js';
import type { StreamRequest } from '../../../src/mux/stream-request.js';
import { DeviceServer, type PeerSpec } from '../../helpers/device-harness.js';
import { freePort } from '../../helpers/ports.js';
import { waitUntil } from '../../helpers/wait.js';

/** Connects, writes `data`, half-closes, and collects the reply until the socket closes. */
function exchange(port: number, data: string): Promise<{ reply: string; error?: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    let error: NodeJS.ErrnoException | undefined;
    socket.on('connect', () => socket.end(data));
    socket.on('data', (c: Buffer) => (reply += c.toString()));
    socket.on('error', (err) => (error = err));
    socket.on('close', () => resolve({ reply, ...(error ? { error } : {}) }));
  });
}

/** An echo agent that records the relayed opens it accepts. */
function echoAgent(seen: StreamRequest[]): (request: StreamRequest) => void {
  return (request) => {
    seen.push(request);
    const stream = request.accept();
    stream.on('error', () => {});
    stream.pipe(stream);
  };
}

function specs(port: number, extra: Partial<PeerSpec> = {}): PeerSpec[] {
  return [{ name: 'build1', kind: 'device', reverse: [{ service: 'echo', host: '127.0.0.1', port }], ...extra }];
}

describe('reverse listeners', () => {
  it('listen once the service is announced, carry connections as mode reverse, release on disconnect and come back at once', async () => {
    const port = await freePort();
    const server = new DeviceServer(specs(port));
    const seen: StreamRequest[] = [];
    const device = server.connect('build1', echoAgent(seen));
    expect(server.router.status()[0]?.reverse).toEqual([]); // nothing announced yet
    await server.announce(device, ['echo']);
    await waitUntil(() => server.router.status()[0]?.reverse[0]?.up === true, 'the listener', 5_000);
    expect(server.find('reverse.listen', { device: 'build1', service: 'echo', listen: `127.0.0.1:${port}` })).toBeDefined();

    expect((await exchange(port, 'hello')).reply).toBe('hello');
    expect(decodeRelayedTarget(seen[0]!.target)).toEqual({ service: 'echo', mode: 'reverse', user: 'reverse', userKey: '' });
    await waitUntil(() => server.find('device.stream.close', { user: 'reverse' }) !== undefined);
    expect(server.find('device.stream.close', { user: 'reverse' })).toMatchObject({ bytesToDevice: 5, bytesFromDevice: 5, how: 'closed' });

    // An open connection is reset when the device goes away, and the port is released at once.
    const open = net.connect(port, '127.0.0.1');
    const openClosed = new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      let error: NodeJS.ErrnoException | undefined;
      open.on('error', (err) => (error = err));
      open.on('close', () => resolve(error));
    });
    await waitUntil(() => seen.length === 2, 'the second connection to reach the device', 5_000);
    device.agent.close('normal');
    expect((await openClosed)?.code).toBe('ECONNRESET');
    expect((await exchange(port, 'x')).error?.code).toBe('ECONNREFUSED');
    expect(server.find('reverse.release', { device: 'build1', service: 'echo' })).toBeDefined();

    // Back again: the same port listens again as soon as the service is announced.
    const again = server.connect('build1', echoAgent(seen));
    await server.announce(again, ['echo']);
    await waitUntil(() => server.router.status()[0]?.reverse[0]?.up === true, 'the listener to come back', 5_000);
    expect((await exchange(port, 'again')).reply).toBe('again');
    again.agent.close('normal');
    await waitUntil(() => server.router.status().length === 0);
  });

  it('a bind failure is logged and shown as down, not fatal; the next sync retries', async () => {
    const port = await freePort();
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    const server = new DeviceServer(specs(port));
    const seen: StreamRequest[] = [];
    const device = server.connect('build1', echoAgent(seen));
    await server.announce(device, ['echo']);
    await waitUntil(() => server.lines.some((l) => l.event === 'reverse.listen' && l.err === 'EADDRINUSE'), 'the bind failure', 5_000);
    expect(server.router.status()[0]?.reverse).toEqual([{ service: 'echo', listen: `127.0.0.1:${port}`, up: false, connections: 0 }]);
    // The device is still usable through the tunnel; freeing the port and reloading takes it.
    await new Promise((resolve) => squatter.close(resolve));
    server.reload(specs(port));
    await waitUntil(() => server.router.status()[0]?.reverse[0]?.up === true, 'the retried listener', 5_000);
    expect((await exchange(port, 'ok')).reply).toBe('ok');
    device.agent.close('normal');
    await waitUntil(() => server.router.status().length === 0);
  });

  it('reload: a changed reverse list moves the listener, a removed one closes it', async () => {
    const [first, second] = [await freePort(), await freePort()];
    const server = new DeviceServer(specs(first));
    const device = server.connect('build1', echoAgent([]));
    await server.announce(device, ['echo']);
    await waitUntil(() => server.router.status()[0]?.reverse[0]?.up === true);
    server.reload(specs(second));
    await waitUntil(() => server.router.status()[0]?.reverse[0]?.listen === `127.0.0.1:${second}` && server.router.status()[0]?.reverse[0]?.up === true);
    expect((await exchange(first, 'x')).error?.code).toBe('ECONNREFUSED');
    expect((await exchange(second, 'moved')).reply).toBe('moved');
    server.reload(specs(second, { reverse: [] }));
    expect(server.router.status()[0]?.reverse).toEqual([]);
    expect((await exchange(second, 'x')).error?.code).toBe('ECONNREFUSED');
    device.agent.close('normal');
  });

  it('shutdown: stopAccepting refuses new connections while open ones drain, closeAll resets them', async () => {
    const port = await freePort();
    const server = new DeviceServer(specs(port));
    const seen: StreamRequest[] = [];
    const device = server.connect('build1', echoAgent(seen));
    await server.announce(device, ['echo']);
    await waitUntil(() => server.router.status()[0]?.reverse[0]?.up === true);
    const open = net.connect(port, '127.0.0.1');
    const openClosed = new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      let error: NodeJS.ErrnoException | undefined;
      open.on('error', (err) => (error = err));
      open.on('close', () => resolve(error));
    });
    await waitUntil(() => server.router.relayCount === 1, 'the connection to be counted', 5_000);
    server.router.stopAccepting();
    expect((await exchange(port, 'x')).error?.code).toBe('ECONNREFUSED');
    expect(server.router.relayCount).toBe(1);
    server.router.closeAll();
    expect((await openClosed)?.code).toBe('ECONNRESET');
    device.agent.close('normal');
  });

  it('admits connections per source address: beyond its limit they are reset at once, never reach the device, and are logged through a throttle', async () => {
    const port = await freePort();
    const server = new DeviceServer(specs(port));
    const seen: StreamRequest[] = [];
    const device = server.connect('build1', echoAgent(seen));
    await server.announce(device, ['echo']);
    await waitUntil(() => server.router.status()[0]?.reverse[0]?.up === true);
    const COUNT = MAX_REVERSE_CONNECTIONS_PER_SOURCE + 14;
    const ends = await Promise.all(
      Array.from(
        { length: COUNT },
        () =>
          new Promise<'reset' | 'held'>((resolve) => {
            const s = net.connect(port, '127.0.0.1');
            s.on('error', () => {});
            s.on('close', () => resolve('reset'));
            // Held open: the echo proves the device carries it.
            s.on('connect', () => s.write('x'));
            s.once('data', () => resolve('held'));
          }),
      ),
    );
    const held = ends.filter((e) => e === 'held').length;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(MAX_REVERSE_CONNECTIONS_PER_SOURCE);
    expect(seen.length).toBe(held);
    const refused = server.lines.filter((l) => l.event === 'device.stream.refused' && l.user === 'reverse');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.length).toBeLessThanOrEqual(COUNT - held);
    expect(refused[0]).toMatchObject({ device: 'build1', reason: 'limit' });
    device.agent.close('normal');
    await waitUntil(() => server.router.relayCount === 0, 'the held connections to be reset', 5_000);
  });
});
