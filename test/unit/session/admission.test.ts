/** What the responder decides once a key is confirmed: the per-key session cap, and whether the client reads mux SETTINGS. */
import { afterEach, describe, expect, it } from 'vitest';
import type { CloseReason } from '../../../src/channel.js';
import { RecordType } from '../../../src/session/record.js';
import type { SessionInfo } from '../../../src/session/listen-secure.js';
import { RawClient, connectPeer, makePeer, refusals, startServer, type TestServer } from '../../helpers/capture-logger.js';
import { waitUntil } from '../../helpers/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(...args: Parameters<typeof startServer>): Promise<TestServer> {
  const s = await startServer(...args);
  cleanups.push(() => s.server.close());
  return s;
}

/** The replay guard wants 20 ms between two initiations of one key. */
const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 30));

describe('per-key session cap', () => {
  it('closes the newest session beyond maxSessionsPerKey with auth-failed and the reason, and logs too-many-sessions', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice], { limits: { maxSessionsPerKey: 2 } });
    const held = [];
    for (let i = 0; i < 2; i++) {
      if (i > 0) await pause();
      held.push((await connectPeer(srv, alice)).session);
    }
    await pause();
    const { session: third, lines: thirdLines } = await connectPeer(srv, alice);
    let reason: CloseReason | undefined;
    third.onClose((r) => (reason = r));
    await waitUntil(() => reason !== undefined, 'the third session closed', 5_000);
    expect(reason).toMatchObject({ code: 'auth-failed', remote: true, message: 'too many sessions for this key (max_sessions_per_key = 2)' });
    // The client's log says why.
    await waitUntil(() => thirdLines.some((l) => l.event === 'session.closed'), 'the client logged the close', 5_000);
    expect(thirdLines.find((l) => l.event === 'session.closed')).toMatchObject({
      reason: 'auth-failed',
      remoteClose: true,
      detail: 'too many sessions for this key (max_sessions_per_key = 2)',
    });
    expect(held.every((s) => !s.closed)).toBe(true);
    expect(srv.server.sessions.size).toBe(2);
    expect(refusals(srv.lines).map((l) => l.reason)).toEqual(['too-many-sessions']);
    // A slot that frees is usable again.
    held[0]!.close();
    await waitUntil(() => srv.server.sessions.size === 1, 'the first session gone', 5_000);
    await pause();
    const { session: again } = await connectPeer(srv, alice);
    await waitUntil(() => srv.server.sessions.size === 2, 'the new session admitted', 5_000);
    expect(again.closed).toBe(false);
    for (const s of [...held, again]) s.close();
  });
});

describe('Twoway-Mux-Settings', () => {
  it('is reported true for a client that sends it (connectSecure) and false for one that does not', async () => {
    const alice = makePeer('alice');
    const infos: SessionInfo[] = [];
    const srv = await server([alice], { onSession: (_s, info) => infos.push(info) });
    const raw = new RawClient(srv.url, alice, srv.keys.publicKey);
    cleanups.push(() => raw.close());
    await raw.opened();
    raw.sendRaw(raw.seal(RecordType.keepalive));
    await waitUntil(() => infos.length === 1, 'the raw session confirmed', 5_000);
    await pause();
    const { session } = await connectPeer(srv, alice);
    await waitUntil(() => infos.length === 2, 'the second session confirmed', 5_000);
    expect(infos).toEqual([{ muxSettings: false }, { muxSettings: true }]);
    session.close();
  });
});
