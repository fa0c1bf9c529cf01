/**
 * What only a real WebSocket shows: a stream that is never read beside a bulk one, and the TCP
 * connection dying without a close frame. The rest of the mux suite runs over both transports
 * (session.test.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MuxStreamError } from '../../../src/mux/reason.js';
import { websocketPair } from '../../helpers/channel-pairs.js';
import { drain, pump, sessionPair } from '../../helpers/streams.js';
import { waitUntil } from '../../helpers/wait.js';

const MiB = 1024 * 1024;
let stop: (() => Promise<void>) | undefined;

afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe('MuxSession over a loopback WebSocket', () => {
  it('transfers 8 MiB each way with sha256 intact, alongside a stream that is never read', async () => {
    const ws = await websocketPair();
    stop = ws.stop;
    const { client, requests } = sessionPair({ channels: ws.channels });
    const slow = client.openStream('slow:1');
    const bulk = client.openStream('bulk:1');
    await waitUntil(() => requests.length === 2);
    const slowRemote = requests[0]!.accept();
    const remote = requests[1]!.accept();
    slowRemote.write(Buffer.alloc(1 * MiB)); // stalls at the slow stream's window
    const [upHash, downHash, up, down] = await Promise.all([pump(bulk, 8 * MiB), pump(remote, 8 * MiB), drain(remote), drain(bulk)]);
    expect(up).toEqual({ hash: upHash, length: 8 * MiB });
    expect(down).toEqual({ hash: downHash, length: 8 * MiB });
    expect(slow.bufferedBytes).toBeLessThanOrEqual(256 * 1024);
    client.close();
  });

  it('reports refusals, resets and a lost connection the same way as in memory', async () => {
    const ws = await websocketPair();
    stop = ws.stop;
    const { client, requests } = sessionPair({ channels: ws.channels });
    const refused = client.openStream('a:1');
    const reset = client.openStream('b:1');
    const survivor = client.openStream('c:1');
    await waitUntil(() => requests.length === 3);
    requests[0]!.reject('not-permitted', 'denied by policy');
    requests[1]!.accept().reset('unreachable');
    requests[2]!.accept();
    const errors = await Promise.all([refused, reset].map((s) => new Promise<MuxStreamError>((resolve) => s.once('error', resolve))));
    expect(errors.map((e) => [e.code, e.reason])).toEqual([
      ['ERR_MUX_STREAM_REFUSED', 'not-permitted'],
      ['ERR_MUX_STREAM_RESET', 'unreachable'],
    ]);
    const lost = new Promise<MuxStreamError>((resolve) => survivor.once('error', resolve));
    await ws.stop(); // the TCP connection dies without GOAWAY
    stop = undefined;
    expect(await lost).toMatchObject({ code: 'ERR_MUX_CLOSED', reason: 'tunnel-closed' });
  });
});
