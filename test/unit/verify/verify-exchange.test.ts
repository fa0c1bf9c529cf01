import { PassThrough, Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MAX_VERIFY_MESSAGE_BYTES, VerifyMessageReader, encodeVerifyMessage, serveVerifyStream, verifyRequest } from '../../../src/verify/verify-exchange.js';

/** Two Duplex ends joined back to back (what one end writes, the other reads). */
function pair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  const make = (readable: PassThrough, writable: PassThrough): Duplex =>
    new Duplex({
      read() {
        const chunk = readable.read() as Buffer | null;
        if (chunk !== null) this.push(chunk);
        else readable.once('readable', () => this._read(0));
      },
      write(chunk, _enc, done) {
        writable.write(chunk, done);
      },
      final(done) {
        writable.end();
        done();
      },
    });
  const a = make(ba, ab);
  const b = make(ab, ba);
  ab.on('end', () => b.push(null));
  ba.on('end', () => a.push(null));
  return [a, b];
}

describe('verification exchange framing', () => {
  it('frames as u32 big-endian length + UTF-8 JSON', () => {
    const bytes = encodeVerifyMessage({ v: 1, method: 'query' });
    const json = '{"v":1,"method":"query"}';
    expect(bytes.readUInt32BE(0)).toBe(json.length);
    expect(bytes.subarray(4).toString('utf8')).toBe(json);
  });

  it('reassembles messages cut at every offset', () => {
    const a = { v: 1, method: 'totp', code: '123456', binding: 'x'.repeat(43) };
    const b = { ok: true, identity: 'élodie', expires_at: '2030-01-01T00:00:00.000Z' };
    const bytes = Buffer.concat([encodeVerifyMessage(a), encodeVerifyMessage(b)]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const reader = new VerifyMessageReader();
      const out = [...reader.push(bytes.subarray(0, cut)), ...reader.push(bytes.subarray(cut))];
      expect(out, `cut at ${cut}`).toEqual([a, b]);
      expect(reader.pending).toBe(0);
    }
  });

  it('refuses a length above 16 KiB before buffering it, bad UTF-8, bad JSON and non-objects', () => {
    const over = Buffer.alloc(4);
    over.writeUInt32BE(MAX_VERIFY_MESSAGE_BYTES + 1);
    expect(() => new VerifyMessageReader().push(over)).toThrow(expect.objectContaining({ code: 'ERR_VERIFY_BAD_MESSAGE' }));
    const frame = (body: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
    for (const body of [Buffer.from([0xff, 0xfe]), Buffer.from('{"a":'), Buffer.from('[1]'), Buffer.from('null'), Buffer.from('"s"')]) {
      expect(() => new VerifyMessageReader().push(frame(body))).toThrow(expect.objectContaining({ code: 'ERR_VERIFY_BAD_MESSAGE' }));
    }
    expect(() => encodeVerifyMessage({ pad: 'x'.repeat(MAX_VERIFY_MESSAGE_BYTES) })).toThrow(/exceeds/);
  });

  it('serves requests in turn on one stream and answers each', async () => {
    const [client, server] = pair();
    const seen: unknown[] = [];
    serveVerifyStream(server, async (m) => {
      seen.push(m);
      return { ok: true, echo: m.n };
    });
    const reader = new VerifyMessageReader();
    const answers: unknown[] = [];
    const got = new Promise<void>((resolve) =>
      client.on('data', (chunk: Buffer) => {
        answers.push(...reader.push(chunk));
        if (answers.length === 3) resolve();
      }),
    );
    client.write(Buffer.concat([1, 2, 3].map((n) => encodeVerifyMessage({ n }))));
    await got;
    expect(answers).toEqual([1, 2, 3].map((n) => ({ ok: true, echo: n })));
    expect(seen).toHaveLength(3);
  });

  it('the client side sends one request and resolves with the answer', async () => {
    const [client, server] = pair();
    serveVerifyStream(server, async (m) => ({ ok: m.method === 'query' }));
    await expect(verifyRequest(client, { method: 'query' })).resolves.toEqual({ ok: true });
  });

  it('ends an idle stream after the idle time', async () => {
    const [client, server] = pair();
    serveVerifyStream(server, async () => ({ ok: true }), 20);
    await new Promise<void>((resolve) => {
      client.on('end', () => resolve());
      client.resume();
    });
  });
});
