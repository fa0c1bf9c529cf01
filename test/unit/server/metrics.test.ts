/**
 * The server's counters come from typed audit events (src/log/audit.ts), not from log lines: they
 * count with the log level at `error`, and they count streams relayed into a device.
 */
import type { Duplex } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../../src/crypto/keys.js';
import { ServerMetrics } from '../../../src/server/metrics.js';
import { daemonPairFixture, startDaemonPair } from '../../helpers/daemon-pair.js';
import { waitUntil } from '../../helpers/wait.js';

const fixture = daemonPairFixture();

function roundTrip(stream: Duplex, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = '';
    stream.on('data', (c: Buffer) => {
      got += c.toString();
      if (got.length >= text.length) stream.end();
    });
    stream.once('error', reject);
    stream.once('end', () => resolve());
    stream.write(text);
  });
}

async function value(metrics: ServerMetrics, series: string): Promise<number> {
  const text = await metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('ServerMetrics from audit events', () => {
  it('counts handshakes, target streams and device relays with the log level at error', async () => {
    const nasKey = generateKeyPair();
    // The gauges read the pair's status at scrape time only.
    const metrics = new ServerMetrics(() => fixture.pair!.server.status());
    fixture.pair = await startDaemonPair({
      realSocket: false,
      serverLogLevel: 'error',
      peers: [
        { name: 'alice', allow: [`127.0.0.1:${fixture.echoPort}`], devices: ['nas:files'] },
        { name: 'nas', kind: 'device', key: nasKey },
      ],
      server: { audit: (event) => metrics.count(event) },
      client: { devicePins: new Map([['nas', nasKey.publicKey]]) },
    });
    const server = fixture.pair;
    await server.addClient(1, { services: [{ name: 'files', target: `127.0.0.1:${fixture.echoPort}`, allow: ['*'], reverse: false }] });
    await waitUntil(() => server.server.status().devices[0]?.services.includes('files') === true, 'the device to announce', 5_000);
    // A key the server does not know.
    const stranger = {
      url: 'ws://memory/twoway',
      staticKeyPair: generateKeyPair(),
      serverPublicKeys: [server.serverKey.publicKey],
      logger: pino({ level: 'silent' }),
    };
    await expect(server.network!.connect(stranger)).rejects.toMatchObject({ code: 'ERR_SESSION_AUTH' });

    await roundTrip(fixture.pair.client.openStream(`127.0.0.1:${fixture.echoPort}`), 'plain!');
    await waitUntil(() => fixture.pair!.server.status().sessions.every((s) => s.streams === 0), 'the plain stream to close', 5_000);
    expect(await value(metrics, 'twoway_stream_bytes_total{direction="to_target"}')).toBe(6);
    expect(await value(metrics, 'twoway_stream_bytes_total{direction="from_target"}')).toBe(6);
    await roundTrip(fixture.pair.client.openStream('nas:files'), 'relayed');
    const refused = fixture.pair.client.openStream('nas:other');
    await new Promise((resolve) => refused.once('error', resolve));
    await waitUntil(
      () => fixture.pair!.server.status().devices[0]?.streams === 0 && fixture.pair!.server.status().sessions.every((s) => s.streams === 0),
      'the streams to close',
      5_000,
    );

    expect(fixture.pair.serverLines.filter((l) => (l.level as number) < 50)).toEqual([]);
    expect(await value(metrics, 'twoway_handshakes_total{outcome="accepted"}')).toBe(2);
    expect(await value(metrics, 'twoway_handshakes_total{outcome="refused"}')).toBe(1);
    expect(await value(metrics, 'twoway_auth_refusals_total{reason="unknown-key"}')).toBe(1);
    expect(await value(metrics, 'twoway_streams_total{outcome="opened"}')).toBe(2);
    expect(await value(metrics, 'twoway_streams_total{outcome="refused"}')).toBe(1);
    expect(await value(metrics, 'twoway_stream_refusals_total{reason="not-permitted"}')).toBe(1);
    // And the relayed stream's bytes (its inner Noise session), both ways.
    expect(await value(metrics, 'twoway_stream_bytes_total{direction="to_target"}')).toBeGreaterThan(6);
    expect(await value(metrics, 'twoway_stream_bytes_total{direction="from_target"}')).toBeGreaterThan(6);
    expect(await value(metrics, 'twoway_sessions')).toBe(2);
  });
});
