import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReasonCode } from '../../../src/mux/reason.js';
import type { StreamOpener } from '../../../src/forward/local-forward.js';
import { startSocksServer } from '../../../src/forward/socks5.js';
import { fakeOpener, readAll, streamError, streamPair } from '../../helpers/fake-opener.js';
import { waitUntil } from '../../helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function socks(open: StreamOpener, handshakeTimeoutMs?: number): Promise<number> {
  const handle = await startSocksServer({ listen: { host: '127.0.0.1', port: 0 }, open, ...(handshakeTimeoutMs ? { handshakeTimeoutMs } : {}) });
  cleanups.push(() => handle.close());
  return handle.address()!.port;
}

/** A raw SOCKS client: sends `bytes`, collects everything until the server closes. */
function exchange(port: number, ...writes: Buffer[]): { socket: net.Socket; received: Promise<Buffer>; chunks: Buffer[] } {
  const socket = net.connect({ host: '127.0.0.1', port });
  cleanups.push(() => void socket.destroy());
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const received = new Promise<Buffer>((resolve) => {
    socket.on('error', () => resolve(Buffer.concat(chunks)));
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
  for (const w of writes) socket.write(w);
  return { socket, received, chunks };
}

const GREETING = Buffer.from([5, 1, 0]);
function connectRequest(host: string, port: number, command = 1): Buffer {
  const name = Buffer.from(host, 'latin1');
  return Buffer.concat([Buffer.from([5, command, 0, 3, name.length]), name, Buffer.from([port >> 8, port & 255])]);
}
function reply(code: number): Buffer {
  return Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
}

/** An opener that refuses every stream with `reason`, after a tick (as the mux would). */
function refusing(reason: ReasonCode, targets: string[] = []): StreamOpener {
  return (target) => {
    targets.push(target);
    const [near, far] = streamPair();
    far.on('error', () => {});
    setImmediate(() => near.destroy(streamError('ERR_MUX_STREAM_REFUSED', reason)));
    return near;
  };
}

describe('SOCKS5 server', () => {
  it('serves curl --socks5-hostname, passing the name through unresolved', async () => {
    const web = http.createServer((req, res) => res.end(`hello ${req.url}`));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => web.close(() => r())));
    const webPort = (web.address() as net.AddressInfo).port;
    const opener = fakeOpener([`localhost:${webPort}`, `127.0.0.1:${webPort}`, `[::1]:${webPort}`]);
    const port = await socks(opener.open);
    const out = await new Promise<string>((resolve, reject) => {
      execFile('curl', ['-sS', '--max-time', '10', '--socks5-hostname', `127.0.0.1:${port}`, `http://localhost:${webPort}/path`], (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout),
      );
    });
    expect(out).toBe('hello /path');
    expect(opener.targets).toEqual([`localhost:${webPort}`]);
  });

  it.each<[ReasonCode, number]>([
    ['not-permitted', 0x02],
    ['connection-refused', 0x05],
    ['unreachable', 0x04],
    ['dns-failure', 0x04],
    ['timeout', 0x06],
    ['limit', 0x01],
    ['error', 0x01],
    ['tunnel-closed', 0x03],
  ])('answers a refusal with reason %s with reply 0x%s', async (reason, code) => {
    const targets: string[] = [];
    const port = await socks(refusing(reason, targets));
    const { received } = exchange(port, GREETING, connectRequest('db.example', 5432));
    expect(await received).toEqual(Buffer.concat([Buffer.from([5, 0]), reply(code)]));
    expect(targets).toEqual(['db.example:5432']);
  });

  it('maps real refusals from the dialer (policy, closed port)', async () => {
    const port = await socks(fakeOpener(['127.0.0.1:1-1000']).open);
    const denied = exchange(port, GREETING, connectRequest('127.0.0.1', 2000));
    expect((await denied.received).subarray(2)).toEqual(reply(0x02));
  });

  it('sends the success reply only once the stream is open, and keeps early bytes', async () => {
    const farEnds: Duplex[] = [];
    const nearEnds: Duplex[] = [];
    const opener: StreamOpener = () => {
      const [near, far] = streamPair();
      farEnds.push(far);
      nearEnds.push(near);
      return near;
    };
    const port = await socks(opener);
    // Greeting, request and the first application bytes in one segment.
    const { socket, chunks } = exchange(port, Buffer.concat([GREETING, connectRequest('svc.example', 80), Buffer.from('GET / HTTP/1.0\r\n\r\n')]));
    await waitUntil(() => farEnds.length === 1 && Buffer.concat(chunks).length >= 2, 'stream opened', 5_000);
    const far = farEnds[0]!;
    const early = new Promise<Buffer>((resolve) => far.once('data', resolve));
    expect((await early).toString()).toBe('GET / HTTP/1.0\r\n\r\n');
    expect(Buffer.concat(chunks)).toEqual(Buffer.from([5, 0]));
    nearEnds[0]!.emit('open');
    await waitUntil(() => Buffer.concat(chunks).length >= 12, 'success reply', 5_000);
    expect(Buffer.concat(chunks)).toEqual(Buffer.concat([Buffer.from([5, 0]), reply(0)]));
    far.end('HTTP/1.0 200 OK\r\n\r\n');
    const rest = readAll(far);
    socket.end();
    await rest;
    await waitUntil(() => Buffer.concat(chunks).toString('latin1').endsWith('200 OK\r\n\r\n'), 'response', 5_000);
  });

  it('refuses other commands with 0x07 and no acceptable method with 0xff', async () => {
    const opened: string[] = [];
    const port = await socks(refusing('error', opened));
    const bind = exchange(port, GREETING, connectRequest('x.example', 80, 2));
    expect(await bind.received).toEqual(Buffer.concat([Buffer.from([5, 0]), reply(0x07)]));
    const auth = exchange(port, Buffer.from([5, 1, 2]));
    expect(await auth.received).toEqual(Buffer.from([5, 0xff]));
    expect(opened).toEqual([]);
  });

  it('closes on malformed input and on a slow handshake', async () => {
    const opened: string[] = [];
    const port = await socks(refusing('error', opened), 100);
    expect((await exchange(port, Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0])).received).length).toBe(0);
    expect(await exchange(port, GREETING, Buffer.from([5, 1, 0, 9, 0, 0])).received).toEqual(Buffer.from([5, 0]));
    const slow = exchange(port, GREETING);
    expect(await slow.received).toEqual(Buffer.from([5, 0]));
    expect(opened).toEqual([]);
  });
});
