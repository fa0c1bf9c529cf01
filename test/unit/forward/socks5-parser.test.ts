import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ForwardError } from '../../../src/errors.js';
import { Socks5Parser, encodeReply, type SocksEvent } from '../../../src/forward/socks5-parser.js';

type Outcome = { greeting?: boolean; request?: { command: number; target: string }; rest?: string; error?: string };

/** Feeds `chunks` in order, draining events; records what was decided. */
function run(chunks: Uint8Array[]): Outcome {
  const parser = new Socks5Parser();
  const out: Outcome = {};
  const after: Uint8Array[] = [];
  try {
    for (const chunk of chunks) {
      // After the request the caller reads the socket itself: later bytes follow parser.rest().
      if (out.request) {
        after.push(chunk);
        continue;
      }
      let event: SocksEvent = parser.push(chunk);
      while (event.kind !== 'need-more') {
        if (event.kind === 'greeting') {
          out.greeting = event.acceptable;
          event = parser.push(new Uint8Array(0));
        } else {
          out.request = { command: event.command, target: event.target };
          break;
        }
      }
    }
    if (out.request) out.rest = Buffer.concat([parser.rest(), ...after]).toString('hex');
  } catch (err) {
    expect(err).toBeInstanceOf(ForwardError);
    expect((err as ForwardError).code).toBe('ERR_SOCKS_PROTOCOL');
    out.error = (err as Error).message;
  }
  return out;
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');

describe('Socks5Parser', () => {
  const cases: Array<[string, string, string]> = [
    ['IPv4', '05 01 00  05 01 00 01 7f000001 0050', '127.0.0.1:80'],
    ['IPv6', '05 02 02 00  05 01 00 04 00000000000000000000000000000001 0016', '[::1]:22'],
    ['domain', '05 01 00  05 01 00 03 0b 4578616d706c652e636f6d 01bb', 'Example.com:443'],
    ['numeric domain', '05 01 00  05 01 00 03 05 3132372e31 0050', '127.0.0.1:80'],
    ['IPv6 literal domain', '05 01 00  05 01 00 03 03 3a3a31 0016', '[::1]:22'],
  ];
  it.each(cases)('parses a %s CONNECT at every split point, keeping the bytes after it', (_name, text, target) => {
    const bytes = Buffer.concat([hex(text), Buffer.from('early')]);
    for (let i = 0; i <= bytes.length; i++) {
      for (const j of [i, Math.min(bytes.length, i + 3), bytes.length]) {
        const out = run([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
        expect(out).toEqual({ greeting: true, request: { command: 1, target }, rest: Buffer.from('early').toString('hex') });
      }
    }
    // One byte at a time.
    expect(run([...bytes].map((b) => Uint8Array.of(b))).request?.target).toBe(target);
  });

  it('reports a greeting without "no authentication" as unacceptable', () => {
    expect(run([hex('05 02 01 02')])).toEqual({ greeting: false });
  });

  it.each([
    ['version 4', '04 01 00'],
    ['no methods', '05 00'],
    ['request version', '05 01 00  04 01 00 01 7f000001 0050'],
    ['reserved byte', '05 01 00  05 01 01 01 7f000001 0050'],
    ['address type', '05 01 00  05 01 00 05 7f000001 0050'],
    ['empty domain', '05 01 00  05 01 00 03 00 0050'],
    ['bad domain chars', '05 01 00  05 01 00 03 03 612f62 0050'],
    ['port 0', '05 01 00  05 01 00 01 7f000001 0000'],
  ])('rejects %s', (_name, text) => {
    expect(run([hex(text)]).error).toMatch(/^SOCKS5: /);
  });

  it('passes the command through for the caller to refuse', () => {
    expect(run([hex('05 01 00  05 03 00 01 7f000001 0050')]).request).toEqual({ command: 3, target: '127.0.0.1:80' });
  });

  it('fuzz: any bytes at any split give the same typed outcome, and never throw anything else', () => {
    const valid = fc
      .tuple(
        fc.uint8Array({ minLength: 1, maxLength: 4 }),
        fc.constantFrom(1, 2, 3),
        fc.oneof(
          fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => Buffer.concat([Buffer.from([1]), a])),
          fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.concat([Buffer.from([4]), a])),
          fc.stringMatching(/^[a-z0-9.-]{1,40}$/).map((d) => Buffer.concat([Buffer.from([3, d.length]), Buffer.from(d)])),
        ),
        fc.integer({ min: 0, max: 65535 }),
      )
      .map(([methods, cmd, addr, port]) =>
        Buffer.concat([Buffer.from([5, methods.length]), methods, Buffer.from([5, cmd, 0]), addr, Buffer.from([port >> 8, port & 255])]),
      );
    const anyBytes = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
    const mutated = fc.tuple(valid, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, at, v]) => {
      const c = Buffer.from(b);
      c[at % c.length] = v;
      return c;
    });
    fc.assert(
      fc.property(fc.oneof(valid, anyBytes, mutated), fc.array(fc.nat(), { maxLength: 6 }), (bytes, cuts) => {
        const whole = run([bytes]);
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let from = 0;
        for (const p of points) {
          chunks.push(bytes.subarray(from, p));
          from = p;
        }
        chunks.push(bytes.subarray(from));
        expect(run(chunks)).toEqual(whole);
      }),
      { numRuns: 2000, seed: 0x50c5 },
    );
  });

  it('encodes replies with bound address 0.0.0.0:0', () => {
    expect(encodeReply(0x05)).toEqual(Buffer.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0]));
  });
});
