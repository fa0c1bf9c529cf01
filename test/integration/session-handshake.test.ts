import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { connectSecureWithWireProtocol } from '../../src/session/connect-secure.js';
import { listenSecureWithWireProtocol } from '../../src/session/listen-secure.js';
import { wireProtocol, WIRE, ZERO_PSK } from '../../src/session/wire.js';
import { createInitiation } from '../../src/session/handshake.js';
import { fingerprint } from '../../src/crypto/keys.js';
import { hasCode } from '../../src/errors.js';
import { RawClient, captureLogger, connectPeer, expectAlive, makePeer, refusals, startServer, type TestServer } from '../helpers/capture-logger.js';
import { waitUntil } from '../helpers/wait.js';

const servers: TestServer[] = [];
async function server(...args: Parameters<typeof startServer>): Promise<TestServer> {
  const s = await startServer(...args);
  servers.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.server.close()));
});

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(Error);
  expect((err as { code?: string }).code).toBe(code);
  return err as Error;
}

describe('secure session handshake', () => {
  it('establishes a session, carries data both ways and logs on both sides', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice]);
    const { session, lines } = await connectPeer(srv, alice);
    await expectAlive(session);
    expect(session.peerName).toBe('server');
    expect(Buffer.from(session.peerPublicKey)).toEqual(Buffer.from(srv.keys.publicKey));
    await waitUntil(() => srv.sessions.length === 1);
    const serverSide = srv.sessions[0]!;
    expect(serverSide.peerName).toBe('alice');
    expect(Buffer.from(serverSide.peerPublicKey)).toEqual(Buffer.from(alice.keys.publicKey));
    expect(srv.server.sessions.has(serverSide)).toBe(true);
    expect(lines.some((l) => l['event'] === 'auth.accepted')).toBe(true);
    expect(srv.lines.some((l) => l['event'] === 'auth.accepted' && l['peer'] === 'alice')).toBe(true);
    // parts are sent as one message
    const got = new Promise<Uint8Array>((r) => session.onMessage(r));
    session.send([Uint8Array.of(1, 2), Uint8Array.of(3)]);
    expect([...(await got)]).toEqual([1, 2, 3]);
    expect(session.stats.recordsOut).toBeGreaterThanOrEqual(3);
    // no key material in any log line
    const secret = Buffer.from(alice.keys.privateKey).toString('base64');
    expect(JSON.stringify([...lines, ...srv.lines])).not.toContain(secret);
    session.close();
    await waitUntil(() => srv.server.sessions.size === 0);
  });

  it('serves several clients at once, each with its own identity', async () => {
    const peers = ['a', 'b', 'c', 'd'].map((n) => makePeer(n, randomBytes(32)));
    const srv = await server(peers);
    const sessions = await Promise.all(peers.map((p) => connectPeer(srv, p).then((r) => r.session)));
    await Promise.all(sessions.map((s) => expectAlive(s)));
    await waitUntil(() => srv.sessions.length === 4);
    expect(new Set(srv.sessions.map((s) => s.peerName))).toEqual(new Set(['a', 'b', 'c', 'd']));
    sessions.forEach((s) => s.close());
  });

  it('refuses an unknown key, a revoked key and a wrong psk; an established session is undisturbed', async () => {
    const good = makePeer('good', randomBytes(32));
    const revoked = makePeer('revoked');
    const withPsk = makePeer('psk', randomBytes(32));
    const srv = await server([good, revoked, withPsk]);
    const { session } = await connectPeer(srv, good);
    await expectAlive(session);

    await expectCode(connectPeer(srv, makePeer('stranger')), 'ERR_SESSION_AUTH');
    await waitUntil(() => refusals(srv.lines).some((l) => l['reason'] === 'unknown-key'));

    const first = await connectPeer(srv, revoked);
    await waitUntil(() => srv.sessions.length === 2);
    first.session.close();
    srv.removePeer(revoked);
    // Kept: one key's initiations must be 20 ms apart (the replay guard's floor), else the refusal
    // below would say 'too-soon' instead of 'revoked'.
    await new Promise((r) => setTimeout(r, 25));
    await expectCode(connectPeer(srv, revoked), 'ERR_SESSION_AUTH');
    await waitUntil(() => refusals(srv.lines).some((l) => l['reason'] === 'revoked' && l['fingerprint'] === fingerprint(revoked.keys.publicKey)));

    // A wrong psk: message 1 passes, message 2 cannot be decrypted by the client.
    const wrong = { ...withPsk, psk: randomBytes(32) };
    await expectCode(connectPeer(srv, wrong), 'ERR_SESSION_DECRYPT');
    await waitUntil(() => refusals(srv.lines).some((l) => l['reason'] === 'psk-or-key-confirmation-failed'));

    const line = refusals(srv.lines).find((l) => l['reason'] === 'unknown-key')!;
    expect(typeof line['remote']).toBe('string');
    expect(typeof line['fingerprint']).toBe('string');
    await expectAlive(session);
    expect(srv.server.sessions.size).toBe(1);
    session.close();
  });

  it('refuses a peer without psk when requirePsk is set', async () => {
    const nopsk = makePeer('nopsk');
    const srv = await server([nopsk], { requirePsk: true });
    await expectCode(connectPeer(srv, nopsk), 'ERR_SESSION_AUTH');
    await waitUntil(() => refusals(srv.lines).some((l) => l['reason'] === 'psk-required'));
  });

  it('answers every authentication failure with the same bytes', async () => {
    const known = makePeer('known');
    const srv = await server([known], { limits: { handshakeBurstPerAddress: 50 } });
    const responses: string[] = [];
    const net = await import('node:net');
    const raw = (header: string): Promise<string> =>
      new Promise((resolve) => {
        const sock = net.connect(srv.server.address().port, '127.0.0.1');
        let data = '';
        sock.on('data', (d) => (data += d.toString('latin1')));
        sock.on('close', () => resolve(data));
        sock.on('error', () => {});
        sock.write(
          `GET /twoway HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${WIRE.subprotocol}\r\nTwoway-Handshake: ${header}\r\n\r\n`,
        );
      });
    const m1 = (peer: ReturnType<typeof makePeer>, key: Uint8Array): string =>
      Buffer.from(createInitiation(WIRE, peer.keys, key, ZERO_PSK).message).toString('base64url');
    responses.push(await raw(m1(makePeer('s'), srv.keys.publicKey)));
    responses.push(await raw('!!!not-base64!!!'));
    responses.push(await raw(Buffer.from(randomBytes(110)).toString('base64url')));
    responses.push(await raw(m1(known, makePeer('x').keys.publicKey)));
    // A low-order ephemeral key (all zeros, and the order-8 point) fails like everything else.
    const lowOrder = Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex');
    for (const e of [Buffer.alloc(32), lowOrder]) {
      responses.push(await raw(Buffer.concat([e, randomBytes(78)]).toString('base64url')));
    }
    expect(responses[0]).toMatch(/^HTTP\/1\.1 401 /);
    expect([...new Set(responses)], JSON.stringify(responses)).toHaveLength(1);
    expect(responses[0]).not.toMatch(/server:|date:/i);
  });

  it('reports a server holding a different key than pinned, naming both fingerprints', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice]);
    const other = makePeer('impostor-key').keys.publicKey;
    const err = await expectCode(connectPeer(srv, alice, { serverPublicKeys: [other] }), 'ERR_SESSION_SERVER_KEY_MISMATCH');
    expect(err.message).toContain(fingerprint(srv.keys.publicKey));
    expect(err.message).toContain(fingerprint(other));
    await waitUntil(() => refusals(srv.lines).some((l) => l['reason'] === 'bad-message'));
  });

  it('connects when the server key is the second of several pinned keys (rotation)', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice]);
    const old = makePeer('old').keys.publicKey;
    const { session } = await connectPeer(srv, alice, { serverPublicKeys: [old, srv.keys.publicKey] });
    await expectAlive(session);
    session.close();
  });

  it('an impersonating server that knows the key only in public fails on the client', async () => {
    // The impostor answers with its own key pair; the client pinned the real server's key.
    const alice = makePeer('alice');
    const real = await server([alice]);
    const impostor = await server([alice]);
    const err = await expectCode(connectPeer(impostor, alice, { serverPublicKeys: [real.keys.publicKey] }), 'ERR_SESSION_SERVER_KEY_MISMATCH');
    expect(err.message).toContain(fingerprint(impostor.keys.publicKey));
    expect(impostor.server.sessions.size).toBe(0);
  });

  it('refuses another protocol version at upgrade with a clear client error', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice]);
    const { session } = await connectPeer(srv, alice);
    const { logger } = captureLogger();
    const err = await expectCode(
      connectSecureWithWireProtocol({ url: srv.url, staticKeyPair: alice.keys, serverPublicKeys: [srv.keys.publicKey], logger }, wireProtocol(2)),
      'ERR_SESSION_PROTOCOL_VERSION',
    );
    expect(err.message).toContain('twoway.v1');
    expect(err.message).toContain('twoway.v2');
    await waitUntil(() => refusals(srv.lines).some((l) => String(l['detail']).includes('twoway.v2')));
    await expectAlive(session);
    session.close();
  });

  it('refuses a handshake under another prologue (same subprotocol)', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice]);
    const { logger } = captureLogger();
    const changed = { ...WIRE, prologue: new TextEncoder().encode('twoway handshake v1 tampered') };
    await expectCode(
      connectSecureWithWireProtocol({ url: srv.url, staticKeyPair: alice.keys, serverPublicKeys: [srv.keys.publicKey], logger }, changed),
      'ERR_SESSION_AUTH',
    );
    await waitUntil(() => refusals(srv.lines).some((l) => l['reason'] === 'bad-message'));
  });

  it('a server of another version refuses a current client', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice], {}, (o) => listenSecureWithWireProtocol(o, wireProtocol(7)));
    const err = await expectCode(connectPeer(srv, alice), 'ERR_SESSION_PROTOCOL_VERSION');
    expect(err.message).toContain('twoway.v7');
  });

  it('refuses a replayed message 1 and never confirms it', async () => {
    const alice = makePeer('alice');
    const srv = await server([alice]);
    const first = new RawClient(srv.url, alice, srv.keys.publicKey);
    await first.opened();
    first.sendRaw(first.seal(1));
    await waitUntil(() => srv.sessions.length === 1);
    const replay = new RawClient(srv.url, alice, srv.keys.publicKey, { message1: first.message1 });
    await expect(replay.opened()).rejects.toThrow('HTTP 401');
    await waitUntil(() => refusals(srv.lines).some((l) => l['reason'] === 'replay'));
    expect(srv.sessions.length).toBe(1);
    first.close();
  });

  it('does not hand out a session before key confirmation', async () => {
    const alice = makePeer('alice');
    const bob = makePeer('bob');
    const srv = await server([alice, bob]);
    const raw = new RawClient(srv.url, alice, srv.keys.publicKey);
    await raw.opened();
    // A fence instead of a pause: bob's whole handshake, begun after alice's upgrade, is done
    // by the server after anything it would have done for alice without her confirmation.
    const fence = await connectPeer(srv, bob);
    await waitUntil(() => srv.sessions.length >= 1, "bob's session");
    expect(srv.sessions.map((s) => s.peerName)).toEqual(['bob']);
    fence.session.close();
    expect(srv.lines.filter((l) => l['event'] === 'auth.accepted').map((l) => l['peer'])).toEqual(['bob']);
    raw.sendRaw(raw.seal(1));
    await waitUntil(() => srv.sessions.some((s) => s.peerName === 'alice'));
    raw.close();
  });

  it('rejects bad inputs with typed errors', async () => {
    const { logger } = captureLogger();
    const alice = makePeer('alice');
    const err = await connectSecureWithWireProtocol({ url: 'ws://127.0.0.1:1/x', staticKeyPair: alice.keys, serverPublicKeys: [], logger }, WIRE).catch(
      (e: unknown) => e,
    );
    expect(hasCode(err, 'ERR_INVALID_ARG')).toBe(true);
  });
});
