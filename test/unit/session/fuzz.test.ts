/** Bounded fuzzing of every parser: nothing escapes but typed errors, and a server keeps serving. */
import * as net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createChannelPair, type CloseReason } from '../../../src/channel.js';
import { generateKeyPair } from '../../../src/crypto/keys.js';
import { TwowayError } from '../../../src/errors.js';
import { decodeBase64Url } from '../../../src/session/base64url.js';
import { consumeInitiation, consumeResponse, createInitiation, createResponse } from '../../../src/session/handshake.js';
import { decodeInitiationPayload, decodeResponsePayload } from '../../../src/session/handshake-payload.js';
import { resolveSessionLimits } from '../../../src/session/session-limits.js';
import { decodeCloseBody, parseRecordHeader, parseRecordType } from '../../../src/session/record.js';
import { RecordLayer } from '../../../src/session/secure-session.js';
import { WIRE, ZERO_PSK } from '../../../src/session/wire.js';
import { captureLogger, connectPeer, expectAlive, makePeer, startServer } from '../../helpers/capture-logger.js';
import { waitUntil } from '../../helpers/wait.js';

function onlyTyped(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof TwowayError)) throw err;
  }
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max });

describe('parser fuzz', () => {
  it('header decoding, payloads, record header, type and close body throw only typed errors', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => onlyTyped(() => decodeBase64Url(s, 256, 'h'))),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(bytes(40), (b) => {
        onlyTyped(() => decodeInitiationPayload(b));
        onlyTyped(() => decodeResponsePayload(b));
        onlyTyped(() => decodeCloseBody(b));
        onlyTyped(() => parseRecordHeader(b[0] ?? 0));
        onlyTyped(() => parseRecordType(b[0]));
      }),
      { numRuns: 500 },
    );
  });

  it('handshake message 1 and 2 of random bytes fail with typed errors', () => {
    const server = generateKeyPair();
    const client = generateKeyPair();
    fc.assert(
      fc.property(bytes(200), (b) => {
        onlyTyped(() => consumeInitiation(WIRE, server, b));
        const { state } = createInitiation(WIRE, client, server.publicKey, ZERO_PSK);
        onlyTyped(() => consumeResponse(state, b));
      }),
      { numRuns: 200 },
    );
  });

  it('records: any mutation of a valid record, or random bytes, closes the session with protocol-error', async () => {
    const serverKeys = generateKeyPair();
    const clientKeys = generateKeyPair();
    const limits = resolveSessionLimits();
    const samples = fc.sample(
      fc.oneof(
        fc.record({ kind: fc.constant('random' as const), data: bytes(300) }),
        fc.record({ kind: fc.constant('flip' as const), index: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
        fc.record({ kind: fc.constant('cut' as const), index: fc.nat() }),
      ),
      60,
    );
    for (const sample of samples) {
      const init = createInitiation(WIRE, clientKeys, serverKeys.publicKey, ZERO_PSK);
      const consumed = consumeInitiation(WIRE, serverKeys, init.message);
      const response = createResponse(consumed, ZERO_PSK);
      const clientDone = consumeResponse(init.state, response.message);
      const [attacker, serverEnd] = createChannelPair();
      const { logger } = captureLogger();
      let closed: CloseReason | undefined;
      const session = new RecordLayer({
        initiator: false,
        transport: serverEnd,
        keys: response.keys,
        handshakeHash: response.handshakeHash,
        wire: WIRE,
        localStatic: serverKeys,
        remoteStatic: clientKeys.publicKey,
        peerName: 'p',
        remoteAddress: 'mem',
        limits,
        logger,
        rekeyPsk: () => ZERO_PSK,
      });
      session.onClose((r) => (closed = r));
      // A valid keepalive record from the client, then mangled per the sample.
      const ct = clientDone.keys.send.encryptWithAd(Uint8Array.of(0), [Uint8Array.of(1)]);
      const valid = new Uint8Array([0, ...ct]);
      let record: Uint8Array;
      if (sample.kind === 'random') record = sample.data;
      else if (sample.kind === 'flip') {
        record = valid.slice();
        record[sample.index % record.length]! ^= 1 << sample.bit;
      } else record = valid.subarray(0, sample.index % valid.length);
      attacker.send(record);
      await waitUntil(() => closed !== undefined, 'session close', 2_000);
      expect(closed!.code).toBe('protocol-error');
      expect(session.timersActive).toBe(false);
    }
  });

  it('a live server survives random upgrade headers and keeps serving', async () => {
    const good = makePeer('good');
    const evil = makePeer('evil');
    const srv = await startServer([good, evil], { limits: { handshakesPerSecondPerAddress: 10_000, handshakeBurstPerAddress: 10_000 } });
    try {
      const { port } = srv.server.address();
      const headers = fc.sample(
        fc.string({ unit: 'binary-ascii', maxLength: 200 }).map((s) => s.replace(/[\r\n\0]/g, '')),
        40,
      );
      for (const h of headers) {
        const reply = await new Promise<string>((resolve) => {
          const sock = net.connect(port, '127.0.0.1');
          let data = '';
          sock.on('data', (d) => (data += d.toString('latin1')));
          sock.on('close', () => resolve(data));
          sock.on('error', () => resolve(data));
          sock.write(
            `GET /twoway HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${WIRE.subprotocol}\r\nTwoway-Handshake: ${h}\r\n\r\n`,
          );
        });
        expect(reply).toMatch(/^HTTP\/1\.1 (400|401) /);
      }
      const { session } = await connectPeer(srv, good);
      await expectAlive(session);
      expect(srv.server.sessions.size).toBe(1);
      session.close();
    } finally {
      await srv.server.close();
    }
  });
});
