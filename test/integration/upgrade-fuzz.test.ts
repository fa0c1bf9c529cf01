/**
 * Bounded fuzz of the one part of the wire no other fuzzer reaches: the HTTP upgrade request
 * (method, path, version, headers, subprotocol, the handshake header) and the first WebSocket
 * frames after a successful upgrade, sent raw to a real server daemon started from bin/ on
 * loopback. The server never crashes, never writes a raw control byte to its log, answers only
 * with a bare status (no body, no banner) or a close, and a real client still connects after.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, type KeyPair } from '../../src/crypto/keys.js';
import { encodeBase64Url } from '../../src/session/base64url.js';
import { createInitiation } from '../../src/session/handshake.js';
import { HANDSHAKE_HEADER, WIRE, ZERO_PSK } from '../../src/session/wire.js';
import { sendRaw, upgradeRequest, type RawAnswer } from '../helpers/raw-upgrade.js';
import { TestTunnel } from '../helpers/tunnel.js';

const HTTP_RUNS = 120;
const WS_RUNS = 24;
/** A raw control byte (tab and newline aside) anywhere in the daemon's output is a finding. */
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/;
/** The only headers a refusal may carry. */
const BARE_HEADERS = new Set(['connection', 'content-length', 'twoway-server-key', 'twoway-protocol']);

let tunnel: TestTunnel;
let keys: KeyPair[];
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);

beforeAll(async () => {
  keys = Array.from({ length: 8 }, () => generateKeyPair());
  tunnel = new TestTunnel({
    peers: keys.map((key, i) => ({ name: `p${i}`, key, allow: [] })),
    // Budgets wide enough that the fuzz reaches the parsers rather than the rate limiter; a
    // short deadline so upgraded connections that never confirm go away quickly.
    serverLimits:
      'handshake_timeout_ms = 1000\nmax_unauthenticated_per_ip = 128\nhandshake_rate_per_ip = 100000\nhandshake_burst_per_ip = 100000\nhandshake_rate_per_key = 100000\nhandshake_burst_per_key = 100000',
  });
  await tunnel.startServer();
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
});

let lastInitiation = 0;
/** A fresh valid message 1 (at least 20 ms after the last one of any key, the replay floor). */
async function validMessage(keyIndex = 0): Promise<Uint8Array> {
  const wait = lastInitiation + 25 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  lastInitiation = Date.now();
  const key = keys[keyIndex % keys.length]!;
  return createInitiation(WIRE, key, tunnel.serverKey.publicKey, ZERO_PSK).message;
}

const CONTROL_TEXT = fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)), maxLength: 40 });
const token = fc.oneof(fc.constantFrom('websocket', 'WebSocket', 'h2c', '', 'websocket, h2c'), CONTROL_TEXT);

type HandshakeMutation =
  | { kind: 'valid' }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'cut'; at: number }
  | { kind: 'extend'; by: number }
  | { kind: 'text'; text: string }
  | { kind: 'absent' }
  | { kind: 'huge'; chars: number };
const handshake: fc.Arbitrary<HandshakeMutation> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'valid' as const }), weight: 3 },
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(200), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat(200) }),
  fc.record({ kind: fc.constant('extend' as const), by: fc.integer({ min: 1, max: 300 }) }),
  fc.record({ kind: fc.constant('text' as const), text: CONTROL_TEXT }),
  fc.constant({ kind: 'absent' as const }),
  fc.record({ kind: fc.constant('huge' as const), chars: fc.integer({ min: 300, max: 20_000 }) }),
);

/** Mostly `valid`, sometimes one of `others`: each case breaks only a few things at once. */
function mostly<T>(valid: T, ...others: Array<fc.Arbitrary<T>>): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: fc.constant(valid), weight: 6 }, ...others.map((arbitrary) => ({ arbitrary, weight: 1 })));
}
/** Usually undefined, once in eight times a value. */
const rarely = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.oneof({ arbitrary: fc.constant(undefined), weight: 7 }, { arbitrary: a, weight: 1 });

const httpCase = fc.record({
  method: mostly('GET', fc.constantFrom('POST', 'OPTIONS', 'CONNECT', 'get', 'G\x01T')),
  path: mostly(
    '/twoway',
    fc.constantFrom('/twoway?x=1', '/', '/twoway/', '*', '//twoway', '/TWOWAY', '/twoway#f'),
    CONTROL_TEXT.map((t) => `/${t}`),
  ),
  version: mostly('HTTP/1.1', fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTX/1.1', '')),
  upgrade: mostly<string | undefined>('websocket', token, fc.constant(undefined)),
  connection: mostly<string | undefined>('Upgrade', fc.constantFrom('keep-alive, Upgrade', 'close', 'x\x07', undefined)),
  wsVersion: mostly<string | undefined>('13', fc.constantFrom('8', '14', '', 'x', '13, 8', undefined)),
  wsKey: mostly<string | undefined>('dGhlIHNhbXBsZSBub25jZQ==', fc.constantFrom('short', '', '\x1b[2J', undefined)),
  protocol: mostly<string | undefined>(
    WIRE.subprotocol,
    fc.constantFrom('twoway.v0', 'twoway.v2', `chat, ${WIRE.subprotocol}`, 'chat', '', undefined),
    CONTROL_TEXT,
  ),
  handshake,
  extra: fc.oneof(
    { arbitrary: fc.constant([] as Array<[string, string]>), weight: 4 },
    {
      arbitrary: fc.array(
        fc.tuple(
          fc.constantFrom('X-Forwarded-For', 'Host', 'Twoway-Handshake', 'Content-Length', 'Transfer-Encoding', 'X-\x1b]0;t\x07', 'Sec-WebSocket-Protocol'),
          mostly('1', CONTROL_TEXT),
        ),
        { minLength: 1, maxLength: 4 },
      ),
      weight: 1,
    },
  ),
  garbage: rarely(fc.uint8Array({ minLength: 1, maxLength: 600 })),
});

async function handshakeHeader(m: HandshakeMutation): Promise<string | undefined> {
  switch (m.kind) {
    case 'absent':
      return undefined;
    case 'text':
      return m.text;
    case 'huge':
      return 'A'.repeat(m.chars);
    default: {
      const msg = Buffer.from(await validMessage());
      if (m.kind === 'flip') msg[m.at % msg.length]! ^= 1 << m.bit;
      if (m.kind === 'cut') return encodeBase64Url(msg.subarray(0, m.at % msg.length));
      if (m.kind === 'extend') return encodeBase64Url(Buffer.concat([msg, randomBytes(m.by)]));
      return encodeBase64Url(msg);
    }
  }
}

/** What keeps `answer` from being a bare refusal, or undefined. */
function bareProblem(answer: RawAnswer): string | undefined {
  const text = answer.raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return 'no complete header';
  if (answer.raw.length !== end + 4) return `${answer.raw.length - end - 4} bytes after the header: ${JSON.stringify(text.slice(end + 4, end + 80))}`;
  const extra = text
    .slice(0, end)
    .split('\r\n')
    .slice(1)
    .find((line) => !BARE_HEADERS.has(line.slice(0, line.indexOf(':')).toLowerCase()));
  return extra === undefined ? undefined : `header ${JSON.stringify(extra)}`;
}

/** Whether `answer` is a bare refusal: a status line and only the allowed headers, no body. */
function checkBare(answer: RawAnswer, what: string): void {
  const text = answer.raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  expect(end, what).toBeGreaterThan(0);
  expect(answer.raw.length, `${what}: no body`).toBe(end + 4);
  for (const line of text.slice(0, end).split('\r\n').slice(1)) {
    const name = line.slice(0, line.indexOf(':')).toLowerCase();
    expect(BARE_HEADERS.has(name), `${what}: header ${JSON.stringify(line)}`).toBe(true);
  }
}

/** One WebSocket frame from the client (masked unless told otherwise). */
function frame(opcode: number, payload: Buffer, opts: { fin?: boolean; masked?: boolean; claimed?: number; rsv?: number } = {}): Buffer {
  const length = opts.claimed ?? payload.length;
  const masked = opts.masked ?? true;
  const head = [((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | (opcode & 0x0f)];
  const lenBytes: number[] = [];
  if (length < 126) head.push((masked ? 0x80 : 0) | length);
  else if (length < 65536) {
    head.push((masked ? 0x80 : 0) | 126);
    lenBytes.push(length >> 8, length & 0xff);
  } else {
    head.push((masked ? 0x80 : 0) | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(length));
    lenBytes.push(...b);
  }
  const mask = masked ? randomBytes(4) : Buffer.alloc(0);
  const body = Buffer.from(payload.map((byte, i) => (masked ? byte ^ mask[i % 4]! : byte)));
  return Buffer.concat([Buffer.from(head), Buffer.from(lenBytes), mask, body]);
}

const wsCase = fc.array(
  fc.oneof(
    fc.record({
      kind: fc.constant('frame' as const),
      opcode: fc.constantFrom(0, 1, 2, 2, 2, 3, 8, 9, 10, 11, 15),
      payload: fc.uint8Array({ maxLength: 200 }),
      fin: fc.boolean(),
      masked: fc.boolean(),
      rsv: fc.constantFrom(0, 0, 0, 1, 4),
    }),
    fc.record({ kind: fc.constant('oversize' as const), claimed: fc.constantFrom(65_536, 65_537, 2 ** 31, 2 ** 53 - 1) }),
    fc.record({ kind: fc.constant('truncated' as const), claimed: fc.integer({ min: 10, max: 60_000 }), sent: fc.nat(9) }),
    fc.record({ kind: fc.constant('bytes' as const), data: fc.uint8Array({ minLength: 1, maxLength: 300 }) }),
  ),
  { minLength: 1, maxLength: 4 },
);

function wsBytes(steps: fc.Arbitrary<unknown> extends never ? never : Array<Record<string, unknown>>): Buffer {
  return Buffer.concat(
    steps.map((s) => {
      switch (s.kind) {
        case 'frame':
          return frame(s.opcode as number, Buffer.from(s.payload as Uint8Array), { fin: s.fin as boolean, masked: s.masked as boolean, rsv: s.rsv as number });
        case 'oversize':
          return frame(2, Buffer.alloc(0), { claimed: s.claimed as number });
        case 'truncated':
          return frame(2, randomBytes(s.sent as number), { claimed: s.claimed as number });
        default:
          return Buffer.from(s.data as Uint8Array);
      }
    }),
  );
}

describe('upgrade and handshake-header fuzz against a real server', () => {
  it('answers the cases the fuzz found with a bare refusal too', async () => {
    const valid = async (): Promise<string> => encodeBase64Url(await validMessage());
    const found: Array<[string, () => Promise<string>, number]> = [
      // ws refused these after our checks, with a text body naming the fault.
      ['a bad Sec-WebSocket-Version', async () => upgradeRequest({ 'Sec-WebSocket-Version': 'x', [HANDSHAKE_HEADER]: await valid() }), 400],
      ['a bad Sec-WebSocket-Key', async () => upgradeRequest({ 'Sec-WebSocket-Key': 'short', [HANDSHAKE_HEADER]: await valid() }), 400],
      [
        'a subprotocol list ws cannot parse',
        async () => upgradeRequest({ 'Sec-WebSocket-Protocol': `${WIRE.subprotocol}, @`, [HANDSHAKE_HEADER]: await valid() }),
        400,
      ],
      // A 404 followed by a body the HTTP parser refuses got a second answer on the same socket.
      ['a 404 then a broken chunked body', async () => 'GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 404],
    ];
    for (const [what, build, status] of found) {
      const answer = await sendRaw(tunnel.serverPort, await build(), 3_000, true);
      answer.socket.destroy();
      expect.soft(answer.status, what).toBe(status);
      expect.soft(bareProblem(answer), what).toBeUndefined();
    }
  });

  it(`answers every malformed upgrade with a bare refusal or a close (seed ${seed})`, async () => {
    const cases = fc.sample(httpCase, { numRuns: HTTP_RUNS, seed });
    const seen = new Map<number | 'closed', number>();
    for (const [i, c] of cases.entries()) {
      let bytes: Buffer;
      if (c.garbage !== undefined) {
        bytes = Buffer.from(c.garbage);
      } else {
        const headers: Array<[string, string]> = [['Host', 'localhost']];
        if (c.upgrade !== undefined) headers.push(['Upgrade', c.upgrade]);
        if (c.connection !== undefined) headers.push(['Connection', c.connection]);
        if (c.wsVersion !== undefined) headers.push(['Sec-WebSocket-Version', c.wsVersion]);
        if (c.wsKey !== undefined) headers.push(['Sec-WebSocket-Key', c.wsKey]);
        if (c.protocol !== undefined) headers.push(['Sec-WebSocket-Protocol', c.protocol]);
        const h = await handshakeHeader(c.handshake);
        if (h !== undefined) headers.push([HANDSHAKE_HEADER, h]);
        headers.push(...c.extra);
        bytes = Buffer.from(`${c.method} ${c.path} ${c.version}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`, 'latin1');
      }
      const answer = await sendRaw(tunnel.serverPort, bytes, 3_000);
      answer.socket.destroy();
      const what = `case ${i} (seed ${seed}): ${JSON.stringify(bytes.toString('latin1').slice(0, 300))} -> ${answer.raw.toString('latin1').slice(0, 200)}`;
      seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
      if (answer.status === 'closed') {
        expect(answer.raw.toString('latin1'), what).not.toMatch(/^HTTP/);
        continue;
      }
      if (answer.status === 101) {
        // Only a well-formed upgrade with an untouched message 1 switches protocols.
        expect(c.garbage === undefined && c.handshake.kind === 'valid', what).toBe(true);
        continue;
      }
      expect([400, 401, 404, 426, 429], what).toContain(answer.status);
      checkBare(answer, what);
    }
    // The fuzz reached past the HTTP parser: several kinds of answer came back.
    expect(seen.size, JSON.stringify([...seen])).toBeGreaterThanOrEqual(3);
    expect(tunnel.server!.child.exitCode).toBeNull();
  }, 60_000);

  it(`closes on any malformed first WebSocket frames after a valid upgrade (seed ${seed})`, async () => {
    const cases = fc.sample(wsCase, { numRuns: WS_RUNS, seed });
    const outcomes: string[] = [];
    const BATCH = 8;
    for (let b = 0; b < cases.length; b += BATCH) {
      const batch = cases.slice(b, b + BATCH);
      const requests: Buffer[] = [];
      // One key per case of a batch: messages of one key must arrive in order (replay guard).
      for (const [j, steps] of batch.entries()) {
        requests.push(
          Buffer.concat([
            Buffer.from(upgradeRequest({ [HANDSHAKE_HEADER]: encodeBase64Url(await validMessage(j)) })),
            wsBytes(steps as Array<Record<string, unknown>>),
          ]),
        );
      }
      const done = await Promise.all(
        requests.map(async (bytes, j) => {
          const answer = await sendRaw(tunnel.serverPort, bytes, 3_000);
          const what = `ws case ${b + j} (seed ${seed}): ${JSON.stringify(batch[j])}`;
          if (answer.status !== 101) {
            // The global handshake budget may refuse a burst; that answer is bare as well.
            expect([429], what).toContain(answer.status);
            answer.socket.destroy();
            return 'refused';
          }
          // Whatever the frames were, the server ends the connection (close frame, reset or the
          // handshake deadline) within the bound.
          const closed = await new Promise<boolean>((resolve) => {
            if (answer.socket.destroyed) return resolve(true);
            const timer = setTimeout(() => resolve(false), 5_000);
            answer.socket.once('close', () => {
              clearTimeout(timer);
              resolve(true);
            });
            answer.socket.resume();
          });
          answer.socket.destroy();
          expect(closed, what).toBe(true);
          return 'closed';
        }),
      );
      outcomes.push(...done);
    }
    expect(outcomes.filter((o) => o === 'closed').length).toBeGreaterThan(WS_RUNS / 2);
    expect(tunnel.server!.child.exitCode).toBeNull();
  }, 60_000);

  it('logged no raw control byte and no internal error, and a real client still connects', async () => {
    await tunnel.startClient('p0');
    await tunnel.server!.waitForEvent('auth.accepted', { peer: 'p0' });
    expect(tunnel.server!.stdout).not.toMatch(RAW_CONTROL);
    expect(tunnel.server!.stderr).toBe('');
    expect(tunnel.server!.logLines().filter((l) => l.event === 'internal.error')).toEqual([]);
    // The refusals were logged (rate-limited), with the reasons the operator needs.
    const reasons = new Set(
      tunnel
        .server!.logLines()
        .filter((l) => l.event === 'auth.refused')
        .map((l) => l.reason),
    );
    expect(reasons.has('bad-message'), JSON.stringify([...reasons])).toBe(true);
  }, 30_000);
});
