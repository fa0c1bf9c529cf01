import { createHash, randomBytes } from 'node:crypto';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startLocalForward, type ListenerHandle } from '../../../src/forward/local-forward.js';
import type { PipeResult } from '../../../src/forward/pipe.js';
import { connectAndWatch, connectLoopback, fakeOpener, readAll, tcpServer } from '../../helpers/fake-opener.js';
import { refusingPort } from '../../helpers/ports.js';
import { waitUntil } from '../../helpers/wait.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function forward(
  target: string,
  rules?: string[],
  onConnection?: (r: PipeResult) => void,
): Promise<{ handle: ListenerHandle; port: number; targets: string[] }> {
  const opener = fakeOpener(rules);
  const handle = await startLocalForward({ listen: { host: '127.0.0.1', port: 0 }, target, open: opener.open, ...(onConnection ? { onConnection } : {}) });
  cleanups.push(() => handle.close());
  return { handle, port: handle.address()!.port, targets: opener.targets };
}

function outcome(client: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    client.once('end', () => resolve('end'));
    client.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

describe('startLocalForward', () => {
  it('carries a few MB both ways intact, with half-close, to the fixed target', async () => {
    const up = randomBytes(3 * 1024 * 1024 + 17);
    const down = randomBytes(2 * 1024 * 1024 + 5);
    let receivedHash = '';
    const target = await tcpServer((s) => {
      const h = createHash('sha256');
      s.on('data', (c: Buffer) => h.update(c));
      // Reply only after the client's FIN: proves the FIN did not close our direction.
      s.on('end', () => {
        receivedHash = h.digest('hex');
        s.end(down);
      });
    });
    cleanups.push(target.close);
    const results: PipeResult[] = [];
    const { port, targets } = await forward(`127.0.0.1:${target.port}`, undefined, (r) => results.push(r));
    const client = await connectLoopback(port);
    const got = readAll(client);
    client.end(up);
    expect(sha(await got)).toBe(sha(down));
    expect(receivedHash).toBe(sha(up));
    expect(targets).toEqual([`127.0.0.1:${target.port}`]);
    await waitUntil(() => results.length === 1, 'pipe done', 5_000);
    expect(results[0]).toMatchObject({ how: 'closed', bytesFromSocket: up.length, bytesToSocket: down.length });
  });

  it('serves several connections at once', async () => {
    const target = await tcpServer((s) => s.pipe(s));
    cleanups.push(target.close);
    const { port } = await forward(`127.0.0.1:${target.port}`);
    const payloads = [0, 1, 2, 3, 4].map(() => randomBytes(200_000));
    const echoes = await Promise.all(
      payloads.map(async (p) => {
        const c = await connectLoopback(port);
        const got = readAll(c);
        c.end(p);
        return got;
      }),
    );
    echoes.forEach((e, i) => expect(e.equals(payloads[i]!)).toBe(true));
  });

  it('resets the client when the stream is refused (target port closed)', async () => {
    const { port } = await forward(`127.0.0.1:${await refusingPort()}`);
    const { client, outcome: ended } = connectAndWatch(port);
    cleanups.push(() => void client.destroy());
    client.write('hello?');
    expect(await ended).toBe('ECONNRESET');
  });

  it('resets the client when the policy refuses the target', async () => {
    const target = await tcpServer((s) => s.end('should not see this'));
    cleanups.push(target.close);
    const { port } = await forward(`127.0.0.1:${target.port}`, ['10.0.0.0/8:*']);
    const { client, outcome: ended } = connectAndWatch(port);
    cleanups.push(() => void client.destroy());
    expect(await ended).toBe('ECONNRESET');
  });

  it('close() stops listening and resets open connections', async () => {
    const target = await tcpServer(() => {});
    cleanups.push(target.close);
    const { handle, port } = await forward(`127.0.0.1:${target.port}`);
    const client = await connectLoopback(port);
    const ended = outcome(client);
    client.write('x');
    await handle.close();
    expect(await ended).toBe('ECONNRESET');
    await expect(connectLoopback(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
