/**
 * The crypto backend of real daemons: each says in its daemon.ready line which one seals its
 * records (README "Logs"), and bulk data crosses the tunnel intact with it (records of 64 KiB
 * sealed into one buffer and opened in place by the native AEAD where it is built).
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeAeadStatus } from '../../src/crypto/get-backend.js';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';
import type { Proc } from '../helpers/processes.js';

let tunnel: TestTunnel;
let echo: { server: net.Server; port: number };
let client: Proc;
let forwardPort: number;

beforeAll(async () => {
  echo = await startEchoServer();
  tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${echo.port}`] }] });
  await tunnel.startServer();
  client = await tunnel.startClient('alice', `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echo.port}"\n`);
  [forwardPort] = TestTunnel.listenerPorts(client) as [number];
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  echo?.server.close();
});

describe('crypto backend of the daemons', () => {
  it('both daemons name the backend in daemon.ready: native where the addon loads here, else node with the reason', () => {
    // This test process loads the same addon from the same tree as the daemons it started.
    const expected = nativeAeadStatus.available ? { crypto: 'native' } : { crypto: 'node', nativeAead: nativeAeadStatus.reason };
    for (const daemon of [tunnel.server!, client]) {
      const ready = daemon.logLines().find((l) => l.event === 'daemon.ready');
      expect(ready).toMatchObject(expected);
      if (nativeAeadStatus.available) expect(ready).not.toHaveProperty('nativeAead');
    }
  });

  it('32 MiB echoed through the tunnel arrive intact', async () => {
    const data = randomBytes(32 * 1024 * 1024);
    const received = await new Promise<Buffer>((resolve, reject) => {
      const socket = net.connect(forwardPort, '127.0.0.1');
      const chunks: Buffer[] = [];
      let length = 0;
      socket.on('data', (c: Buffer) => {
        chunks.push(c);
        length += c.length;
        if (length >= data.length) socket.end();
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks)));
      socket.write(data);
    });
    expect(received.length).toBe(data.length);
    expect(createHash('sha256').update(received).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  }, 60_000);
});
