/**
 * Pooled record buffers over a real WebSocket on loopback (src/crypto/record-pool.ts,
 * src/transport/websocket-channel.ts): a buffer goes back to the pool only after the socket has
 * written it. The receiver stops reading until megabytes are queued on the sender, so records
 * wait in the sender's socket queue; a buffer reused while still queued would arrive with the
 * bytes of a later record.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { takeRecordBuffer } from '../../../src/crypto/record-pool.js';
import { WebSocketChannel } from '../../../src/transport/websocket-channel.js';
import { generateZeroMask } from '../../../src/transport/ws-options.js';

const RECORDS = 400;
const RECORD_BYTES = 60_000;

let server: WebSocketServer | undefined;
afterEach(() => server?.close());

describe('pooled records over a WebSocket', () => {
  it('every record arrives with its own bytes while the receiver lags far behind', async () => {
    let resumeReceiver!: () => void;
    const received: Uint8Array[] = [];
    const allReceived = new Promise<void>((resolve) => {
      server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 65_536 });
      server.on('connection', (ws, req) => {
        // Stop reading at once: the sender's kernel buffers fill and ws queues the rest.
        req.socket.pause();
        resumeReceiver = () => req.socket.resume();
        const channel = new WebSocketChannel(ws, { remoteAddress: 'test' });
        channel.onMessage((m) => {
          received.push(m);
          if (received.length === RECORDS) resolve();
        });
      });
    });
    await new Promise<void>((r) => server!.once('listening', () => r()));
    // twoway's clients mask with zeros, so ws sends the record buffer itself (no masked copy).
    const ws = new WebSocket(`ws://127.0.0.1:${(server!.address() as AddressInfo).port}/`, { generateMask: generateZeroMask, perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const sender = new WebSocketChannel(ws, { remoteAddress: 'test', highWaterBytes: 64 * 1024 * 1024 });
    for (let i = 0; i < RECORDS; i++) {
      const record = takeRecordBuffer(RECORD_BYTES);
      record.fill(i & 0xff);
      record[0] = i >> 8;
      sender.send(record);
      // Let write callbacks run now and then, as the event loop does between records in a bulk transfer.
      if (i % 50 === 49) await new Promise((r) => setImmediate(r));
    }
    expect(ws.bufferedAmount, 'records are queued behind the stopped receiver').toBeGreaterThan(RECORD_BYTES * 10);
    resumeReceiver();
    await allReceived;
    for (let i = 0; i < RECORDS; i++) {
      const m = received[i]!;
      expect(m.length).toBe(RECORD_BYTES);
      expect([m[0], m[1], m[RECORD_BYTES - 1]]).toEqual([i >> 8, i & 0xff, i & 0xff]);
    }
    sender.close();
  }, 30_000);
});
