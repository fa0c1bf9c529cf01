/** The framing of `twoway connect` through the daemon's control socket, over a real socket pair. */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlStream } from '../../../src/control/control-stream.js';
import { MuxStreamError } from '../../../src/mux/reason.js';
import { drain, sha256 } from '../../helpers/streams.js';

const servers: net.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** Two connected loopback sockets. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const a = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => a.once('connect', r));
  return [a, await accepted];
}

function failure(stream: ControlStream): Promise<Error & { code?: string; reason?: string }> {
  return new Promise((resolve) => stream.once('error', resolve));
}

describe('ControlStream', () => {
  it('carries data both ways and a half-close: one side ends, the other still sends, then both close cleanly', async () => {
    const [sa, sb] = await socketPair();
    const a = new ControlStream(sa);
    const b = new ControlStream(sb);
    const up = Buffer.alloc(3 * 1024 * 1024 + 7, 1).map((_, i) => i % 251);
    const down = Buffer.alloc(2 * 1024 * 1024 + 3, 2).map((_, i) => (i * 7) % 253);
    const atB = drain(b);
    a.end(up);
    expect((await atB).hash).toBe(sha256(up));
    // a has ended its side; b's direction is still open.
    const atA = drain(a);
    b.end(down);
    expect((await atA).hash).toBe(sha256(down));
    const closed = (s: ControlStream): Promise<unknown> => (s.closed ? Promise.resolve() : new Promise((r) => s.once('close', r)));
    await Promise.all([closed(a), closed(b)]);
    expect(a.errored).toBeNull();
    expect(b.errored).toBeNull();
  });

  it('reassembles frames from any split: a 1 MiB frame in small pieces, and several frames in one piece', async () => {
    const [sa, sb] = await socketPair();
    const b = new ControlStream(sb);
    const big = Buffer.alloc(1024 * 1024).map((_, i) => (i * 13) % 256);
    const header = (type: number, length: number): Buffer => Buffer.from([type, length >>> 24, (length >>> 16) & 255, (length >>> 8) & 255, length & 255]);
    const wire = Buffer.concat([header(0, big.length), big, header(0, 3), Buffer.from('abc'), header(1, 0)]);
    const got = drain(b);
    for (let at = 0; at < wire.length; at += 3001) {
      sa.write(wire.subarray(at, at + 3001));
      if (at % (64 * 3001) === 0) await new Promise((r) => setImmediate(r));
    }
    expect((await got).hash).toBe(sha256(Buffer.concat([big, Buffer.from('abc')])));
  });

  it('a reset carries its code, reason and message to the other side', async () => {
    const [sa, sb] = await socketPair();
    const a = new ControlStream(sa);
    const b = new ControlStream(sb);
    a.on('error', () => {});
    const err = failure(b);
    a.write('partial');
    a.destroy(new MuxStreamError('ERR_MUX_STREAM_RESET', 'stream 3 reset by peer (connection-refused)', 'connection-refused'));
    const e = await err;
    expect(e).toBeInstanceOf(MuxStreamError);
    expect(e.code).toBe('ERR_MUX_STREAM_RESET');
    expect(e.reason).toBe('connection-refused');
    expect(e.message).toBe('stream 3 reset by peer (connection-refused)');
  });

  it('a socket that ends without an END frame is a truncation, not a clean end', async () => {
    const [sa, sb] = await socketPair();
    const b = new ControlStream(sb);
    const err = failure(b);
    sa.end(Buffer.from([0, 0, 0, 0, 2, 0x68, 0x69]));
    expect((await err).code).toBe('ERR_FORWARD_ABORTED');
  });

  it('a malformed frame (unknown type, oversized, empty DATA, data after END) fails the stream', async () => {
    const frames = [
      Buffer.from([9, 0, 0, 0, 0]),
      Buffer.from([0, 0, 0x20, 0, 0]),
      Buffer.from([0, 0, 0, 0, 0]),
      Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x41]),
    ];
    for (const frame of frames) {
      const [sa, sb] = await socketPair();
      const b = new ControlStream(sb);
      b.resume();
      const err = failure(b);
      sa.write(frame);
      expect((await err).code, frame.toString('hex')).toBe('ERR_FORWARD_ABORTED');
      sa.destroy();
    }
  });
});
