import { randomBytes } from 'node:crypto';
import { Duplex, PassThrough } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../../../src/crypto/keys.js';
import { MessageReassembler, lengthPrefix } from '../../../../src/device/e2e/e2e-records.js';
import { e2eInitiate, e2eRespond, type E2EStream } from '../../../../src/device/e2e/e2e-stream.js';
import type { StreamRequest } from '../../../../src/mux/stream-request.js';
import { drain, pump, sessionPair, sha256 } from '../../../helpers/streams.js';
import { waitUntil } from '../../../helpers/wait.js';

const user = generateKeyPair();
const device = generateKeyPair();

/** Two Duplex ends with a hook on each direction (the "server" in the middle). */
function middlePair(hooks: { aToB?: (chunk: Buffer, forward: (c: Buffer) => void) => void } = {}) {
  const aOut = new PassThrough();
  const bIn = new PassThrough();
  const bOut = new PassThrough();
  const aIn = new PassThrough();
  const seenAToB: Buffer[] = [];
  aOut.on('data', (c: Buffer) => {
    seenAToB.push(c);
    (hooks.aToB ?? ((x, f) => f(x)))(c, (x) => bIn.write(x));
  });
  aOut.on('end', () => bIn.end());
  bOut.pipe(aIn);
  const a = Duplex.from({ readable: aIn, writable: aOut });
  const b = Duplex.from({ readable: bIn, writable: bOut });
  return { a, b, seenAToB, bIn };
}

function failure(stream: Duplex): Promise<Error & { code?: string; reason?: string }> {
  return new Promise((resolve) => stream.once('error', resolve));
}

function opened(stream: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once('open', resolve);
    stream.once('error', reject);
  });
}

describe('e2e stream over a mux session', () => {
  function pair(service = 'ssh', expectedUserKey = user.publicKey, deviceKey = device.publicKey, deviceService = service) {
    let responder: E2EStream | undefined;
    const { client } = sessionPair({
      onStreamRequest: (request: StreamRequest) => {
        responder = e2eRespond(request.accept(), { staticKeyPair: device, expectedUserKey, service: deviceService });
        responder.on('error', () => {});
      },
    });
    const initiator = e2eInitiate(client.openStream('build1:ssh'), { staticKeyPair: user, deviceKey, service });
    return { initiator, responder: () => responder! };
  }

  it('carries 4 MiB each way intact and half-closes each way', async () => {
    const { initiator, responder } = pair();
    await opened(initiator);
    await waitUntil(() => responder()?.isOpen === true);
    const upDrain = drain(responder());
    const downDrain = drain(initiator);
    const [upHash, downHash] = await Promise.all([pump(initiator, 4 * 1024 * 1024), pump(responder(), 4 * 1024 * 1024, 50_000)]);
    expect((await upDrain).hash).toBe(upHash);
    expect((await downDrain).hash).toBe(downHash);
  });

  it('a half-closed side still receives until the other side ends', async () => {
    const { initiator, responder } = pair();
    await opened(initiator);
    await waitUntil(() => responder()?.isOpen === true);
    initiator.end();
    await new Promise((r) => responder().once('end', r).resume());
    const got = drain(initiator);
    responder().end(Buffer.from('late reply'));
    const result = await got;
    expect(result.length).toBe('late reply'.length);
  });

  it('refuses a device that does not hold the pinned key (both sides fail)', async () => {
    const { initiator, responder } = pair('ssh', user.publicKey, generateKeyPair().publicKey);
    const err = await failure(initiator);
    expect(err.code === 'ERR_E2E_HANDSHAKE' || err.code === 'ERR_MUX_STREAM_RESET').toBe(true);
    await waitUntil(() => responder()?.destroyed === true);
    expect(responder().errored && (responder().errored as Error & { code?: string }).code).toBe('ERR_E2E_HANDSHAKE');
  });

  it('refuses a user whose key is not the one the server vouched for', async () => {
    const { initiator, responder } = pair('ssh', generateKeyPair().publicKey);
    await failure(initiator);
    await waitUntil(() => responder()?.destroyed === true);
    expect((responder().errored as Error & { code?: string }).code).toBe('ERR_E2E_HANDSHAKE');
  });

  it('refuses a stream redirected to another service (prologue)', async () => {
    const { initiator, responder } = pair('ssh', user.publicKey, device.publicKey, 'postgres');
    await failure(initiator);
    await waitUntil(() => responder()?.destroyed === true);
    expect((responder().errored as Error & { code?: string }).code).toBe('ERR_E2E_HANDSHAKE');
  });

  it('passes a refusal of the inner stream through with its code and reason', async () => {
    const { client } = sessionPair({ onStreamRequest: (r) => r.reject('device-offline', 'device build1 is not connected') });
    const initiator = e2eInitiate(client.openStream('build1:ssh'), { staticKeyPair: user, deviceKey: device.publicKey, service: 'ssh' });
    const err = await failure(initiator);
    expect(err.code).toBe('ERR_MUX_STREAM_REFUSED');
    expect(err.reason).toBe('device-offline');
    expect(err.message).toMatch(/device build1 is not connected/);
  });
});

describe('e2e stream against a middle that relays, alters or cuts', () => {
  function ends(m: ReturnType<typeof middlePair>) {
    const initiator = e2eInitiate(m.a, { staticKeyPair: user, deviceKey: device.publicKey, service: 'ssh' });
    const responder = e2eRespond(m.b, { staticKeyPair: device, expectedUserKey: user.publicKey, service: 'ssh' });
    return { initiator, responder };
  }

  it('the middle sees no plaintext', async () => {
    const m = middlePair();
    const { initiator, responder } = ends(m);
    const marker = Buffer.from('PLAINTEXT-MARKER-');
    const payload = Buffer.concat(Array.from({ length: 5_000 }, () => marker));
    const got = drain(responder);
    initiator.end(payload);
    expect((await got).hash).toBe(sha256(payload));
    const wire = Buffer.concat(m.seenAToB);
    expect(wire.length).toBeGreaterThan(payload.length);
    expect(wire.includes(Buffer.from('PLAINTEXT'))).toBe(false);
  });

  it('a flipped byte in a record is an error, never altered data', async () => {
    let seen = 0;
    const m = middlePair({
      aToB: (chunk, forward) => {
        const copy = Buffer.from(chunk);
        // Past msg1 (2 + 96 bytes): flip one byte inside the first transport record.
        const at = 200 - seen;
        if (at >= 0 && at < copy.length) copy[at]! ^= 0x01;
        seen += chunk.length;
        forward(copy);
      },
    });
    const { initiator, responder } = ends(m);
    initiator.on('error', () => {});
    const received: Buffer[] = [];
    responder.on('data', (c: Buffer) => received.push(c));
    const err = failure(responder);
    await opened(initiator);
    initiator.write(randomBytes(4096));
    expect((await err).code).toBe('ERR_E2E_RECORD');
    expect(received.length).toBe(0);
  });

  it('a replayed transcript never opens the device side: its CONFIRM does not fit the new handshake', async () => {
    const first = middlePair();
    const original = ends(first);
    const got = drain(original.responder);
    original.initiator.end(Buffer.from('once'));
    expect((await got).length).toBe(4);
    const transcript = Buffer.concat(first.seenAToB);
    // The same bytes into a fresh device side, as a server that kept them could send them.
    const again = middlePair();
    const responder = e2eRespond(again.b, { staticKeyPair: device, expectedUserKey: user.publicKey, service: 'ssh' });
    let opened = false;
    responder.on('open', () => (opened = true));
    const received: Buffer[] = [];
    responder.on('data', (c: Buffer) => received.push(c));
    const err = failure(responder);
    again.bIn.write(transcript);
    const e = await err;
    expect(e.code).toBe('ERR_E2E_HANDSHAKE');
    expect(e.message).toMatch(/did not confirm/);
    expect(opened).toBe(false);
    expect(received).toEqual([]);
  });

  it('the device side opens only on the CONFIRM, not on msg1', async () => {
    let forward = 1;
    const m = middlePair({ aToB: (c, f) => forward-- > 0 && f(c) });
    const { initiator, responder } = ends(m);
    initiator.on('error', () => {});
    responder.on('error', () => {});
    let responderOpen = false;
    responder.on('open', () => (responderOpen = true));
    // The user's side opens on msg2, which the device wrote right after reading msg1 (so by now it
    // would have opened on msg1 alone); the user's CONFIRM is dropped by the middle.
    await opened(initiator);
    expect(responderOpen).toBe(false);
  });

  it('an inner end without an authenticated END is a truncation', async () => {
    let forwarding = true;
    const m = middlePair({ aToB: (c, forward) => forwarding && forward(c) });
    const { initiator, responder } = ends(m);
    initiator.on('error', () => {});
    await opened(initiator);
    initiator.write(Buffer.from('first part'));
    await new Promise((r) => responder.once('data', r));
    forwarding = false;
    const err = failure(responder);
    m.bIn.end();
    expect((await err).code).toBe('ERR_E2E_TRUNCATED');
  });
});

describe('record reassembly', () => {
  it('yields the same messages for any split of the byte stream', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 40 }),
        (messages, cuts) => {
          const wire = Buffer.concat(messages.flatMap((m) => [lengthPrefix(m.length), Buffer.from(m)]));
          const r = new MessageReassembler();
          const out: Buffer[] = [];
          let offset = 0;
          for (let i = 0; offset < wire.length; i++) {
            const n = cuts[i % cuts.length]!;
            r.push(wire.subarray(offset, offset + n));
            offset += n;
            for (let m = r.next(); m !== undefined; m = r.next()) out.push(Buffer.from(m));
          }
          expect(out.map((b) => b.toString('hex'))).toEqual(messages.map((m) => Buffer.from(m).toString('hex')));
          expect(r.buffered).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a message that does not fit a u16 length', () => {
    expect(() => lengthPrefix(65_536)).toThrow(/u16/);
  });
});
