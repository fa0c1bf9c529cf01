/**
 * The Prometheus endpoint of a real server daemon: sessions, streams, bytes, handshakes by
 * outcome and refusals by reason, after real traffic and a real refused client.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestTunnel, startEchoServer } from '../helpers/tunnel.js';

let tunnel: TestTunnel;
let echo: { server: net.Server; port: number };
let metricsPort: number;
let forwardPort: number;

beforeAll(async () => {
  echo = await startEchoServer();
  tunnel = new TestTunnel({
    peers: [
      { name: 'alice', allow: [`127.0.0.1:${echo.port}`] },
      { name: 'stranger', allow: [] },
    ],
    serverExtra: 'metrics_listen = "127.0.0.1:0"',
  });
  // The stranger has keys but is not on the server's allowlist.
  tunnel.writePeers(tunnel.peers.filter((p) => p.name === 'alice'));
  await tunnel.startServer();
  metricsPort = Number((await tunnel.server!.waitForEvent('listen', { kind: 'metrics' })).port);
  const client = await tunnel.startClient(
    'alice',
    `[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:${echo.port}"\n[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "127.0.0.1:1"\n`,
  );
  [forwardPort] = TestTunnel.listenerPorts(client) as [number];
}, 30_000);

afterAll(async () => {
  await tunnel?.stop();
  echo?.server.close();
});

async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

describe('metrics endpoint', () => {
  it('counts sessions, streams, bytes and refusals', async () => {
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(forwardPort, '127.0.0.1');
      s.on('error', reject);
      s.on('data', () => s.end());
      s.on('close', () => resolve());
      s.write('x'.repeat(1000));
    });
    await tunnel.server!.waitForEvent('stream.close');
    tunnel.server!.kill('SIGHUP');
    await tunnel.server!.waitForEvent('config.reload');
    await tunnel.startClient('stranger', '', false);
    await tunnel.server!.waitForEvent('auth.refused', { reason: 'unknown-key' });

    const text = await scrape();
    expect(value(text, 'twoway_sessions')).toBe(1);
    expect(value(text, 'twoway_handshakes_total{outcome="accepted"}')).toBe(1);
    expect(value(text, 'twoway_handshakes_total{outcome="refused"}')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'twoway_auth_refusals_total{reason="unknown-key"}')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'twoway_streams_total{outcome="opened"}')).toBe(1);
    expect(value(text, 'twoway_stream_bytes_total{direction="to_target"}')).toBe(1000);
    expect(value(text, 'twoway_reloads_total{outcome="ok"}')).toBe(1);
  });

  it('answers anything else with a bare 404', async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/`);
    expect(res.status).toBe(404);
    expect(res.headers.get('x-powered-by')).toBeNull();
    expect(await res.text()).toBe('');
  });
});
