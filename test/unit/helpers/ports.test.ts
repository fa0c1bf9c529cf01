/** The test ports are what their names promise, for as long as the test process lives. */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, refusingPort } from '../../helpers/ports.js';

const connectOutcome = (port: number): Promise<string> =>
  new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });

const listenOutcome = (port: number): Promise<string> =>
  new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve('listening')));
  });

describe('test ports', () => {
  it('refusingPort refuses connections and cannot be listened on by anyone else', async () => {
    const port = await refusingPort();
    expect(await connectOutcome(port)).toBe('ECONNREFUSED');
    expect(await listenOutcome(port)).toBe('EADDRINUSE');
    expect(await connectOutcome(port)).toBe('ECONNREFUSED');
  });

  it('freePort hands out distinct bindable ports below the ephemeral range', async () => {
    const [low] = (await import('node:fs')).readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) expect(port).toBeLessThan(low!);
    expect(await listenOutcome(ports[0]!)).toBe('listening');
  });
});
