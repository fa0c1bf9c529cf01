/**
 * The optional Prometheus endpoint, on its own listen address (keep it on loopback or a
 * management network). Counters follow the typed audit events (src/log/audit.ts: the daemon's
 * and the device router's, whatever the log level), gauges are read from the daemon at scrape
 * time. Anything but GET /metrics gets a bare 404.
 */
import http from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { AuditEvent } from '../log/audit.js';
import type { ServerStatus } from './server-daemon.js';

export class ServerMetrics {
  readonly registry = new Registry();
  readonly #handshakes: Counter;
  readonly #refusals: Counter;
  readonly #streams: Counter;
  readonly #streamRefusals: Counter;
  readonly #streamBytes: Counter;
  readonly #reloads: Counter;
  readonly #verifications: Counter;

  constructor(status: () => ServerStatus) {
    const registers = [this.registry];
    this.#handshakes = new Counter({ name: 'twoway_handshakes_total', help: 'Handshakes by outcome', labelNames: ['outcome'], registers });
    this.#refusals = new Counter({ name: 'twoway_auth_refusals_total', help: 'Refused handshakes by reason', labelNames: ['reason'], registers });
    this.#streams = new Counter({ name: 'twoway_streams_total', help: 'Stream opens by outcome', labelNames: ['outcome'], registers });
    this.#streamRefusals = new Counter({ name: 'twoway_stream_refusals_total', help: 'Refused stream opens by reason', labelNames: ['reason'], registers });
    this.#streamBytes = new Counter({ name: 'twoway_stream_bytes_total', help: 'Bytes carried by closed streams', labelNames: ['direction'], registers });
    this.#reloads = new Counter({ name: 'twoway_reloads_total', help: 'Allowlist reloads by outcome', labelNames: ['outcome'], registers });
    this.#verifications = new Counter({
      name: 'twoway_verifications_total',
      help: 'User verification requests by method and outcome',
      labelNames: ['method', 'outcome'],
      registers,
    });
    new Gauge({
      name: 'twoway_verified_sessions',
      help: 'Established sessions whose key holds a valid user verification',
      registers,
      collect() {
        this.set(status().sessions.filter((s) => s.verification !== null).length);
      },
    });
    new Gauge({
      name: 'twoway_sessions',
      help: 'Established sessions',
      registers,
      collect() {
        this.set(status().sessions.length);
      },
    });
    new Gauge({
      name: 'twoway_streams_open',
      help: 'Open streams over all sessions',
      registers,
      collect() {
        this.set(status().sessions.reduce((n, s) => n + s.streams, 0));
      },
    });
    new Gauge({
      name: 'twoway_session_bytes',
      help: 'Record bytes of the established sessions',
      labelNames: ['direction'],
      registers,
      collect() {
        const s = status().sessions;
        this.set(
          { direction: 'in' },
          s.reduce((n, x) => n + x.bytesIn, 0),
        );
        this.set(
          { direction: 'out' },
          s.reduce((n, x) => n + x.bytesOut, 0),
        );
      },
    });
  }

  /** Counts one audit event (the daemon's and the device router's sink): counters only go up. */
  count(event: AuditEvent): void {
    switch (event.type) {
      case 'handshake-accepted':
        this.#handshakes.inc({ outcome: 'accepted' });
        break;
      case 'handshake-refused':
        this.#handshakes.inc({ outcome: 'refused' });
        this.#refusals.inc({ reason: event.reason });
        break;
      case 'stream-opened':
        this.#streams.inc({ outcome: 'opened' });
        break;
      case 'stream-refused':
        this.#streams.inc({ outcome: 'refused' });
        this.#streamRefusals.inc({ reason: event.reason });
        break;
      case 'stream-closed':
        this.#streamBytes.inc({ direction: 'to_target' }, Math.max(0, event.bytesToTarget));
        this.#streamBytes.inc({ direction: 'from_target' }, Math.max(0, event.bytesFromTarget));
        break;
      case 'reload':
        this.#reloads.inc({ outcome: event.ok ? 'ok' : 'failed' });
        break;
      case 'verification':
        this.#verifications.inc({ method: event.method, outcome: event.outcome });
        break;
    }
  }
}

export interface MetricsServer {
  address(): { host: string; port: number };
  close(): Promise<void>;
}

export function startMetricsServer(listen: { host: string; port: number }, registry: Registry): Promise<MetricsServer> {
  const server = http.createServer({ headersTimeout: 5_000, requestTimeout: 10_000, maxHeaderSize: 8192 }, (req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'Content-Length': '0' }).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      () => res.writeHead(500, { 'Content-Length': '0' }).end(),
    );
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      server.on('error', () => {});
      resolve({
        address() {
          const a = server.address();
          return a && typeof a === 'object' ? { host: a.address, port: a.port } : { host: listen.host, port: listen.port };
        },
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
