import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { MAX_DATA_BYTES, MAX_RECORD_BYTES, WIRE } from '../../src/session/wire.js';
import { RecordType } from '../../src/session/record.js';
import { RawClient, connectPeer, expectAlive, makePeer, startServer, type TestServer } from '../helpers/capture-logger.js';
import { waitUntil } from '../helpers/wait.js';

let srv: TestServer | undefined;
afterEach(async () => {
  await srv?.server.close();
  srv = undefined;
});

/** A server with one legitimate session and one confirmed raw adversary. */
async function setup(): Promise<{ srv: TestServer; raw: RawClient; good: Awaited<ReturnType<typeof connectPeer>>['session'] }> {
  const good = makePeer('good');
  const evil = makePeer('evil');
  srv = await startServer([good, evil]);
  const { session } = await connectPeer(srv, good);
  const raw = new RawClient(srv.url, evil, srv.keys.publicKey);
  await raw.opened();
  raw.sendRaw(raw.seal(RecordType.keepalive));
  await waitUntil(() => srv!.sessions.length === 2, 'both sessions', 5_000);
  return { srv, raw, good: session };
}

async function expectOnlyAdversaryClosed(s: TestServer, raw: RawClient, good: Awaited<ReturnType<typeof setup>>['good']): Promise<void> {
  await waitUntil(() => raw.closed, 'adversary closed', 5_000);
  await waitUntil(() => s.server.sessions.size === 1, 'one session left', 5_000);
  expect([...s.server.sessions][0]!.peerName).toBe('good');
  await expectAlive(good);
  good.close();
}

describe('record layer against a misbehaving peer', () => {
  const cases: Array<[string, (raw: RawClient) => void]> = [
    [
      'one flipped bit',
      (raw) => {
        const r = raw.seal(RecordType.data, Uint8Array.of(1, 2, 3));
        r[5]! ^= 0x10;
        raw.sendRaw(r);
      },
    ],
    [
      'a flipped key-phase bit',
      (raw) => {
        const r = raw.seal(RecordType.data, Uint8Array.of(1));
        r[0]! ^= 1;
        raw.sendRaw(r);
      },
    ],
    [
      'reserved header bits',
      (raw) => {
        const r = raw.seal(RecordType.data, Uint8Array.of(1));
        r[0]! |= 0x80;
        raw.sendRaw(r);
      },
    ],
    ['a truncated record', (raw) => raw.sendRaw(raw.seal(RecordType.data, randomBytes(100)).subarray(0, 60))],
    [
      'a replayed record',
      (raw) => {
        const r = raw.seal(RecordType.data, Uint8Array.of(9));
        raw.sendRaw(r);
        raw.sendRaw(r);
      },
    ],
    [
      'reordered records',
      (raw) => {
        const a = raw.seal(RecordType.data, Uint8Array.of(1));
        const b = raw.seal(RecordType.data, Uint8Array.of(2));
        raw.sendRaw(b);
        raw.sendRaw(a);
      },
    ],
    ['an oversized frame', (raw) => raw.sendRaw(randomBytes(MAX_RECORD_BYTES + 1))],
    ['garbage', (raw) => raw.sendRaw(randomBytes(200))],
    ['a text message', (raw) => raw.sendRaw('hello')],
    ['an unknown record type', (raw) => raw.sendRaw(raw.seal(0x7f))],
    ['a keepalive with a body', (raw) => raw.sendRaw(raw.seal(RecordType.keepalive, Uint8Array.of(0)))],
    ['a rekey-response to a responder', (raw) => raw.sendRaw(raw.seal(RecordType.rekeyResponse, randomBytes(48)))],
    ['a rekey-init with garbage', (raw) => raw.sendRaw(raw.seal(RecordType.rekeyInit, randomBytes(96)))],
    ['an empty message', (raw) => raw.sendRaw(new Uint8Array(0))],
  ];
  for (const [name, attack] of cases) {
    it(`closes only that session on ${name}`, async () => {
      const { srv: s, raw, good } = await setup();
      attack(raw);
      await expectOnlyAdversaryClosed(s, raw, good);
    });
  }

  it('garbage and a text message before confirmation end the connection without a session', async () => {
    const good = makePeer('good');
    const evil = makePeer('evil');
    srv = await startServer([good, evil]);
    const { session } = await connectPeer(srv, good);
    for (const payload of [randomBytes(64), 'text'] as const) {
      const raw = new RawClient(srv.url, evil, srv.keys.publicKey);
      await raw.opened();
      raw.sendRaw(payload);
      await waitUntil(() => raw.closed);
      // Kept: the same key initiates again next round, and one key's initiations must be 20 ms
      // apart (the replay guard's floor), else the second would be refused before its payload.
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(srv.server.sessions.size).toBe(1);
    await expectAlive(session);
    session.close();
  });

  it('plain HTTP, another path and raw garbage get bare refusals', async () => {
    srv = await startServer([]);
    const { port } = srv.server.address();
    const exchange = (text: string): Promise<string> =>
      new Promise((resolve) => {
        const sock = net.connect(port, '127.0.0.1');
        let data = '';
        sock.on('data', (d) => (data += d.toString('latin1')));
        sock.on('close', () => resolve(data));
        sock.on('error', () => resolve(data));
        sock.write(text);
      });
    const notFound = await exchange('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(notFound).toMatch(/^HTTP\/1\.1 404 /);
    expect(notFound).not.toMatch(/server:|x-powered-by/i);
    const wrongPath = await exchange(
      `GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${WIRE.subprotocol}\r\n\r\n`,
    );
    expect(wrongPath).toMatch(/^HTTP\/1\.1 404 /);
    const garbage = await exchange('\x00\x01\x02 garbage\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('the client refuses to send a message above the record limit and sends the largest', async () => {
    const good = makePeer('good');
    srv = await startServer([good]);
    const { session } = await connectPeer(srv, good);
    expect(() => session.send(new Uint8Array(MAX_DATA_BYTES + 1))).toThrow(expect.objectContaining({ code: 'ERR_SESSION_RECORD_TOO_LARGE' }));
    const big = randomBytes(MAX_DATA_BYTES);
    const echoed = await new Promise<Uint8Array>((r) => {
      session.onMessage(r);
      session.send(big);
    });
    expect(Buffer.compare(Buffer.from(echoed), big)).toBe(0);
    session.close();
  });

  it('an encrypted close record carries its reason to the client', async () => {
    const good = makePeer('good');
    srv = await startServer([good]);
    const { session } = await connectPeer(srv, good);
    const reason = new Promise<{ code: string; message?: string; remote?: boolean }>((r) => session.onClose(r));
    await waitUntil(() => srv!.sessions.length === 1);
    srv.sessions[0]!.close({ code: 'revoked', message: 'key removed' });
    expect(await reason).toEqual({ code: 'revoked', message: 'key removed', remote: true });
    expect(session.closed).toBe(true);
    expect(session.send(Uint8Array.of(1))).toBe(false);
  });

  it('a raw ws client with no handshake header is refused with 401', async () => {
    srv = await startServer([]);
    const ws = new WebSocket(srv.url, [WIRE.subprotocol]);
    ws.on('error', () => {});
    const status = await new Promise<number>((r) => ws.on('unexpected-response', (_q, res) => r(res.statusCode ?? 0)));
    expect(status).toBe(401);
    ws.terminate();
  });
});
