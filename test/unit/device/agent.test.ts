/**
 * The device agent's side of an end-to-end open (DeviceAgent over a real mux pair, a real TCP
 * service on loopback): the service is dialed only after the user has confirmed the inner
 * handshake. The server sees every byte of a user's handshake, so it could replay them; a replay
 * must dial nothing (SECURITY.md #1: no side effect before key confirmation).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../../src/crypto/keys.js';
import { DeviceAgent, serviceAllows } from '../../../src/device/agent.js';
import { encodeRelayedTarget } from '../../../src/device/target.js';
import { e2eInitiate } from '../../../src/device/e2e/e2e-stream.js';
import { sessionPair } from '../../helpers/streams.js';
import { waitUntil } from '../../helpers/wait.js';

type LogLine = Record<string, unknown>;

const user = generateKeyPair();
const deviceKeys = generateKeyPair();
const target = encodeRelayedTarget({ service: 'echo', mode: 'e2e', user: 'alice', userKey: Buffer.from(user.publicKey).toString('base64') });
const cleanups: Array<() => void> = [];

afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A device agent with one service, `echo`, on a loopback echo server that counts connections. */
async function device(): Promise<{ open: () => Duplex; connections: () => number; lines: LogLine[] }> {
  let connections = 0;
  const service = net.createServer((s) => {
    connections++;
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
  const port = (service.address() as net.AddressInfo).port;
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  const services = new DeviceAgent(
    [{ name: 'echo', target: `127.0.0.1:${port}`, allow: [`alice=${Buffer.from(user.publicKey).toString('base64')}`], reverse: false }],
    deviceKeys,
    logger,
  );
  const { client, server } = sessionPair({ onStreamRequest: (request) => services.handle(request) });
  cleanups.push(() => {
    services.closeAll();
    client.close();
    server.close();
    service.close();
  });
  // `client` plays the twoway server here: it opens relayed streams into the agent.
  return { open: () => client.openStream(target), connections: () => connections, lines };
}

/** Opens a genuine end-to-end stream, records every byte the user's side wrote, echoes once. */
async function genuineTranscript(open: () => Duplex): Promise<Buffer> {
  const raw = open();
  const written: Buffer[] = [];
  const write = raw.write.bind(raw) as (chunk: Buffer) => boolean;
  (raw as { write: (chunk: Buffer) => boolean }).write = (chunk: Buffer) => {
    written.push(Buffer.from(chunk));
    return write(chunk);
  };
  const stream = e2eInitiate(raw, { staticKeyPair: user, deviceKey: deviceKeys.publicKey, service: 'echo' });
  const echoed = new Promise<Buffer>((resolve, reject) => {
    stream.once('data', resolve);
    stream.once('error', reject);
  });
  stream.write('ping');
  expect((await echoed).toString()).toBe('ping');
  stream.destroy();
  return Buffer.concat(written);
}

function refusals(lines: readonly LogLine[]): LogLine[] {
  return lines.filter((l) => l.event === 'device.stream.refused');
}

describe('DeviceAgent, end-to-end opens', () => {
  it('a genuine user: the service is dialed once and carries data (positive control)', async () => {
    const d = await device();
    await genuineTranscript(d.open);
    expect(d.connections()).toBe(1);
    expect(d.lines.some((l) => l.event === 'device.stream.open' && l.user === 'alice')).toBe(true);
  });

  it('a replay of everything the user sent dials nothing and is refused', async () => {
    const source = await device();
    const transcript = await genuineTranscript(source.open);
    const d = await device();
    const replay = d.open();
    replay.on('error', () => {});
    replay.resume();
    replay.write(transcript);
    await waitUntil(() => refusals(d.lines).length === 1, 'the device to refuse the replay', 5_000);
    expect(String(refusals(d.lines)[0]!.detail)).toMatch(/did not confirm/);
    // The old agent dialed on the OPEN, long before this refusal; a refused stream dials nothing.
    expect(d.connections()).toBe(0);
    expect(d.lines.some((l) => l.event === 'device.stream.open')).toBe(false);
  });

  it('a replayed first message alone dials nothing while the device waits for the confirmation', async () => {
    const source = await device();
    const transcript = await genuineTranscript(source.open);
    const msg1Length = 2 + transcript.readUInt16BE(0);
    const d = await device();
    const replay = d.open();
    replay.on('error', () => {});
    const answers: Buffer[] = [];
    replay.on('data', (c: Buffer) => answers.push(c));
    replay.write(transcript.subarray(0, msg1Length));
    // The device answers msg1 (it cannot tell a replay yet) but does not act on it.
    await waitUntil(() => answers.length > 0, 'msg2 from the device', 5_000);
    expect(d.connections()).toBe(0);
    replay.end();
    await waitUntil(() => refusals(d.lines).length === 1, 'the device to give up on the open', 5_000);
    expect(d.connections()).toBe(0);
  });
});

describe('serviceAllows: allow entries bind keys (issue 13 item 5)', () => {
  const alice = Buffer.from(generateKeyPair().publicKey).toString('base64');
  const other = Buffer.from(generateKeyPair().publicKey).toString('base64');

  it('NAME=KEY admits that key, whatever name the server gives it', () => {
    expect(serviceAllows([`alice=${alice}`], alice)).toBe(true);
    expect(serviceAllows([`alice=${alice}`], other)).toBe(false);
  });

  it('a bare key admits that key only; "*" admits any key the server relays', () => {
    expect(serviceAllows([alice], alice)).toBe(true);
    expect(serviceAllows([alice], other)).toBe(false);
    expect(serviceAllows(['*'], other)).toBe(true);
  });

  it('a name never admits on its own, and a reverse-listener open (no key) is never admitted by allow', () => {
    expect(serviceAllows(['alice'], alice)).toBe(false);
    expect(serviceAllows([`alice=${alice}`, '*'], '')).toBe(false);
  });
});
