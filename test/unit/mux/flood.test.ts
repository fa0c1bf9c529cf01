/** A scripted, misbehaving peer against a real MuxSession: every abuse must end or be refused. */
import { describe, expect, it } from 'vitest';
import { createChannelPair } from '../../../src/channel.js';
import { encodeData, encodeFin, encodeOpen, encodeOpenOk, encodeReset, encodeWindowUpdate, OPEN_EARLY_CREDIT_BYTES } from '../../../src/mux/frame.js';
import type { MuxLimits } from '../../../src/mux/mux-limits.js';
import { MuxSession, type MuxCloseInfo } from '../../../src/mux/session.js';
import type { StreamRequest } from '../../../src/mux/stream-request.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { ScriptedPeer, quiet } from '../../helpers/streams.js';
import { waitUntil } from '../../helpers/wait.js';

/** A server session facing a scripted client. */
function victim(limits: Partial<MuxLimits> = {}, onStreamRequest?: (req: StreamRequest) => void) {
  const [a, b] = createChannelPair();
  const peer = new ScriptedPeer(a);
  const requests: StreamRequest[] = [];
  let closeInfo: MuxCloseInfo | undefined;
  const session = new MuxSession(b, {
    role: 'server',
    limits,
    onStreamRequest: onStreamRequest ?? ((req) => requests.push(req)),
  });
  session.onClose((info) => (closeInfo = info));
  return { peer, session, requests, closed: () => closeInfo };
}

describe('mux session against a misbehaving peer', () => {
  it('ends the session when a peer sends beyond the window (ERR_MUX_WINDOW_EXCEEDED)', async () => {
    const streams: MuxStream[] = [];
    const { peer, closed } = victim({ streamWindowBytes: 64 * 1024 }, (req) => streams.push(quiet(req.accept())));
    peer.send(encodeOpen(1, 256 * 1024, 'x:1'));
    const chunk = new Uint8Array(32 * 1024);
    // 64 KiB is the early credit and the window: the third 32 KiB frame overruns it.
    peer.send(encodeData(1, chunk), encodeData(1, chunk));
    await waitUntil(() => streams.length === 1 && streams[0]!.bufferedBytes + streams[0]!.readableLength === 64 * 1024);
    expect(closed()).toBeUndefined();
    const failure = new Promise<Error>((resolve) => streams[0]!.once('error', resolve));
    peer.send(encodeData(1, chunk));
    await waitUntil(() => closed() !== undefined);
    expect(closed()!.error?.code).toBe('ERR_MUX_WINDOW_EXCEEDED');
    expect(closed()!.code).toBe('protocol-error');
    expect(await failure).toMatchObject({ code: 'ERR_MUX_CLOSED', reason: 'tunnel-closed' });
    await waitUntil(() => peer.closedWith !== undefined);
    expect(peer.closedWith!.code).toBe('protocol-error');
    expect(peer.of('goaway')[0]?.code).toBe('protocol-error');
  });

  it('bounds early data before accept to the early credit', async () => {
    const { peer, closed, requests } = victim();
    peer.send(encodeOpen(1, 256 * 1024, 'x:1'));
    const half = new Uint8Array(OPEN_EARLY_CREDIT_BYTES / 2);
    peer.send(encodeData(1, half), encodeData(1, half));
    await waitUntil(() => requests.length === 1);
    expect(closed()).toBeUndefined();
    peer.send(encodeData(1, new Uint8Array(1)));
    await waitUntil(() => closed() !== undefined);
    expect(closed()!.error?.code).toBe('ERR_MUX_WINDOW_EXCEEDED');
  });

  it('refuses opens beyond the rate with reason limit, then cuts a gross open flood', async () => {
    const { peer, closed, session } = victim({ openBurst: 10, openRatePerSecond: 1, idleFrameBurst: 50 }, (req) => quiet(req.accept()));
    for (let id = 1; id <= 21; id += 2) peer.send(encodeOpen(id, 65_536, 'x:1'));
    await waitUntil(() => peer.of('open-fail').length === 1);
    expect(peer.of('open-ok')).toHaveLength(10);
    expect(peer.of('open-fail')[0]).toMatchObject({ streamId: 21, reason: 'limit' });
    expect(closed()).toBeUndefined();
    for (let i = 0, id = 23; i < 200 && !closed(); i++, id += 2) peer.send(encodeOpen(id, 65_536, 'x:1'));
    await waitUntil(() => closed() !== undefined);
    expect(closed()!.error?.code).toBe('ERR_MUX_OPEN_RATE');
    expect(closed()!.code).toBe('flood');
    expect(session.streamCount).toBe(0);
  });

  it('refuses opens beyond the concurrent stream and pending caps', async () => {
    const { peer, closed, requests } = victim({ maxStreams: 4, maxPendingOpens: 2 });
    for (let id = 1; id <= 5; id += 2) peer.send(encodeOpen(id, 65_536, 'x:1'));
    await waitUntil(() => peer.of('open-fail').length === 1);
    expect(peer.of('open-fail')[0]).toMatchObject({ streamId: 5, reason: 'limit', message: 'too many pending opens' });
    requests.forEach((r) => quiet(r.accept()));
    for (let id = 7; id <= 11; id += 2) peer.send(encodeOpen(id, 65_536, 'x:1'));
    await waitUntil(() => peer.of('open-fail').length === 2);
    expect(peer.of('open-fail')[1]).toMatchObject({ streamId: 11, message: 'too many streams' });
    expect(closed()).toBeUndefined();
  });

  it('cuts a rapid-reset flood (open then reset before any answer) with ERR_MUX_FLOOD', async () => {
    const { peer, closed, requests } = victim({ openBurst: 1000, openRatePerSecond: 1000, idleFrameBurst: 100 });
    for (let i = 0, id = 1; i < 500 && !closed(); i++, id += 2) {
      peer.send(encodeOpen(id, 65_536, 'x:1'), encodeReset(id, 'cancel'));
      if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
    }
    await waitUntil(() => closed() !== undefined);
    expect(closed()!.error?.code).toBe('ERR_MUX_FLOOD');
    expect(requests.length).toBeGreaterThan(50);
    expect(requests.every((r) => r.cancelled)).toBe(true);
  });

  it('charges zero window updates and frames for closed streams, and ends the session when the budget runs out', async () => {
    const { peer, closed, requests } = victim({ idleFrameBurst: 20 });
    peer.send(encodeOpen(1, 65_536, 'x:1'));
    await waitUntil(() => requests.length === 1);
    quiet(requests[0]!.accept()).destroy();
    await waitUntil(() => peer.of('reset').length === 1);
    expect(peer.of('reset')[0]).toMatchObject({ streamId: 1, reason: 'cancel' });
    // Data in flight to a reset stream is tolerated for free.
    for (let i = 0; i < 30; i++) peer.send(encodeData(1, new Uint8Array(10)));
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed()).toBeUndefined();
    for (let i = 0; i < 30 && !closed(); i++) peer.send(encodeFin(1), encodeWindowUpdate(1, 0));
    await waitUntil(() => closed() !== undefined);
    expect(closed()!.error?.code).toBe('ERR_MUX_FLOOD');
  });

  it('treats frames for never-opened streams and reused ids as protocol errors', async () => {
    const cases: Array<[string, Uint8Array[], string]> = [
      ['data for a never-opened stream', [encodeData(9, new Uint8Array(1))], 'ERR_MUX_STREAM_STATE'],
      ['OPEN with the server parity', [encodeOpen(2, 65_536, 'x:1')], 'ERR_MUX_BAD_FRAME'],
      ['OPEN reusing an id', [encodeOpen(3, 65_536, 'x:1'), encodeOpen(3, 65_536, 'x:1')], 'ERR_MUX_BAD_FRAME'],
      ['OPEN_OK for a remote stream', [encodeOpen(1, 65_536, 'x:1'), encodeOpenOk(1, 65_536)], 'ERR_MUX_STREAM_STATE'],
      ['data after FIN', [encodeOpen(1, 65_536, 'x:1'), encodeFin(1), encodeData(1, new Uint8Array(1))], 'ERR_MUX_STREAM_STATE'],
      ['garbage', [new Uint8Array([0xff, 0, 0, 0, 0, 0, 0, 1])], 'ERR_MUX_UNKNOWN_FRAME'],
    ];
    for (const [name, frames, code] of cases) {
      const { peer, closed } = victim();
      peer.send(...frames);
      await waitUntil(() => closed() !== undefined, name, 2_000);
      expect([name, closed()!.error?.code]).toEqual([name, code]);
      await waitUntil(() => peer.closedWith !== undefined);
      expect(peer.closedWith!.code).toBe('protocol-error');
    }
  });

  it('rejects a window update that would overflow the credit', async () => {
    const { peer, closed, requests } = victim();
    peer.send(encodeOpen(1, 0x7fff_0000, 'x:1'));
    await waitUntil(() => requests.length === 1);
    quiet(requests[0]!.accept());
    peer.send(encodeWindowUpdate(1, 0x10000));
    await waitUntil(() => closed() !== undefined);
    expect(closed()!.error?.code).toBe('ERR_MUX_BAD_FRAME');
  });
});
