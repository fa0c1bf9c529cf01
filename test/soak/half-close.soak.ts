/**
 * Soak (not part of `npm test`; run with `npm run soak`): many bulk responses after a half-close
 * through real daemons, each checked byte for byte: directly (user client -> server -> target)
 * and through a device agent (user client -> server -> device agent -> service, end to end). The
 * client sends a few bytes and shuts its writing side; the target answers with RESPONSE_BYTES and
 * ends. Every response must arrive whole, with a clean end. This found a FIN sent ahead of a
 * stream's last bytes (about one response in 40 lost its tail under load);
 * test/unit/mux/stream-write-order.test.ts now pins that order deterministically.
 *
 * Bounded: SOAK_ROUNDS rounds (default 15, at most 500) of SOAK_PARALLEL (default 4, at most 32)
 * concurrent exchanges per path; each test times out after 10 minutes.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey, generateKeyPair } from '../../src/crypto/keys.js';
import { TestTunnel, startAnsweringSink } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

const ROUNDS = Math.min(500, Number(process.env.SOAK_ROUNDS ?? 15));
const PARALLEL = Math.min(32, Number(process.env.SOAK_PARALLEL ?? 4));
const RESPONSE_BYTES = 24 * 1024 * 1024;
const response = randomBytes(RESPONSE_BYTES);
const responseDigest = createHash('sha256').update(response).digest('hex');

let sink: net.Server;
let sinkPort: number;

beforeAll(async () => {
  ({ server: sink, port: sinkPort } = await startAnsweringSink(response));
});

afterAll(() => {
  sink?.close();
});

/** Sends 'ping', half-closes, collects everything until the far end closes. */
function exchange(port: number): Promise<{ received: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let error: string | undefined;
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    socket.on('close', () => resolve({ received: Buffer.concat(chunks), ...(error ? { error } : {}) }));
    socket.end('ping');
  });
}

async function soak(port: number): Promise<void> {
  const bad: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const results = await Promise.all(Array.from({ length: PARALLEL }, () => exchange(port)));
    for (const r of results) {
      if (r.error !== undefined || r.received.length !== RESPONSE_BYTES || createHash('sha256').update(r.received).digest('hex') !== responseDigest) {
        let same = 0;
        while (same < r.received.length && r.received[same] === response[same]) same++;
        bad.push(`round ${round}: ${r.received.length} bytes (first difference at ${same}), error ${r.error ?? 'none'}`);
      }
    }
  }
  expect(bad).toEqual([]);
}

describe('soak: bulk responses after a half-close', () => {
  it(`directly: ${ROUNDS} rounds of ${PARALLEL} concurrent 24 MiB responses arrive whole`, async () => {
    const tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [`127.0.0.1:${sinkPort}`] }] });
    try {
      await tunnel.startServer();
      const client = await tunnel.startClient('alice', `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${sinkPort}"\n`);
      await soak(TestTunnel.listenerPorts(client)[0]!);
    } finally {
      await tunnel.stop();
    }
  }, 600_000);

  it(`through a device agent, end to end: ${ROUNDS} rounds of ${PARALLEL} concurrent 24 MiB responses arrive whole`, async () => {
    const device = generateKeyPair();
    const tunnel = new TestTunnel({
      peers: [
        { name: 'alice', allow: [], devices: ['build1:sink'] },
        { name: 'build1', key: device, allow: [], kind: 'device' },
      ],
    });
    try {
      await tunnel.startServer();
      const agent = await tunnel.startClient(
        'build1',
        `[[service]]\nname = "sink"\ntarget = "127.0.0.1:${sinkPort}"\nallow = ["alice=${encodeKey(tunnel.peers.find((p) => p.name === 'alice')!.key.publicKey)}"]\n`,
      );
      await waitUntil(() => agent.logLines().some((l) => l.event === 'device.services'), 'the device to announce its services', 15_000);
      const client = await tunnel.startClient(
        'alice',
        `[[device]]\nname = "build1"\npublic_key = "${encodeKey(device.publicKey)}"\n[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "build1:sink"\n`,
      );
      await soak(TestTunnel.listenerPorts(client)[0]!);
    } finally {
      await tunnel.stop();
    }
  }, 600_000);
});
