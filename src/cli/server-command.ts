import tls from 'node:tls';
import { loadServerConfig } from '../config/server-config.js';
import { ConfigError } from '../errors.js';
import { startControlServer, type ControlReply, type ControlRequest } from '../control/control-server.js';
import { ServerMetrics, startMetricsServer, type MetricsServer } from '../server/metrics.js';
import { ServerDaemon } from '../server/server-daemon.js';
import { EVENTS } from '../log/events.js';
import { createLogger, type LogLevel } from '../log/logger.js';
import { muxLimitsFrom, sessionLimitsFrom } from '../config/limits-map.js';
import { loadKeyPair, loadServerPeers, loadTls } from '../config/load-server.js';
import { openRelayCapture } from './relay-capture.js';
import { StartupResources, runUntilStopped } from './run-daemon.js';
import { serverEnrollment } from './server-enroll.js';

/** `twoway server --config FILE`: runs the server daemon in the foreground until SIGTERM. */
export async function serverCommand(options: { config: string; logLevel: LogLevel; relayCapture?: string }): Promise<void> {
  const config = loadServerConfig(options.config);
  const staticKeyPair = loadKeyPair(config.privateKeyFile);
  const peers = loadServerPeers(config);
  const tls = loadTls(config);
  if (tls !== undefined && config.tls !== undefined) checkTlsPair(tls, config.tls);
  const capture = options.relayCapture === undefined ? undefined : openRelayCapture(options.relayCapture);
  let metrics: ServerMetrics | undefined;
  const logger = createLogger({ level: options.logLevel, base: { role: 'server' } });
  // Joins write the peers file and put it in force at once (the reload below).
  const enrollment = serverEnrollment(config, logger, (trigger) => void reload(trigger));
  let inForce = peers;

  const daemon = new ServerDaemon({
    listen: config.listen,
    path: config.path,
    ...(tls ? { tls } : {}),
    staticKeyPair,
    peers,
    requirePsk: config.requirePsk,
    sessionLimits: sessionLimitsFrom(config.limits),
    muxLimits: muxLimitsFrom(config.limits),
    dialsInFlight: config.limits.dialsInFlight,
    dialTimeoutMs: config.limits.dialTimeoutMs,
    maxStreamsPerKey: config.limits.maxStreamsPerKey,
    shutdownGraceMs: config.shutdownGraceMs,
    ...(config.proxySet !== undefined
      ? { proxies: { trusted: config.proxySet, protocol: config.proxyProtocol ? 'proxy-v2' : 'x-forwarded-for' } as const }
      : {}),
    logger,
    audit: (event) => metrics?.count(event),
    ...(capture ? { relayTap: capture.tap } : {}),
    verify: { totpFile: config.verify.totpFile, maxAttempts: config.verify.maxAttempts, lockoutMs: config.verify.lockoutMs },
    ...(enrollment.join ? { join: enrollment.join } : {}),
  });
  if (capture) logger.warn({ event: EVENTS.daemonStart }, 'relayed device stream bytes are being captured to a file (--debug-relay-capture)');

  /** Re-reads the peers file; a broken file leaves the running allowlist in force. */
  const reload = (trigger: string): ControlReply => {
    try {
      const next = loadServerPeers(config);
      const result = daemon.reload(next);
      enrollment.reloaded(inForce, next);
      inForce = next;
      metrics?.count({ type: 'reload', ok: true });
      logger.info(
        { event: EVENTS.reload, trigger, ...result },
        `allowlist reloaded: ${result.peers} peers, ${result.removed} sessions closed, ${result.streamsReset} streams reset, ${result.opensRefused} pending opens refused`,
      );
      return { ok: true, ...result };
    } catch (err) {
      const message = (err as Error).message;
      metrics?.count({ type: 'reload', ok: false });
      logger.error({ event: EVENTS.reloadFailed, trigger, err: message }, `reload refused, the previous allowlist stays in force: ${message}`);
      return { ok: false, error: message };
    }
  };

  // Every local resource first, the WebSocket listener last: a start that fails leaves no
  // session accepted and nothing open, and exits before READY=1 (issue 12 item 2).
  const resources = new StartupResources();
  const control = await resources.acquire(
    `control_socket ${config.controlSocket}`,
    () =>
      startControlServer(
        config.controlSocket,
        async (request: ControlRequest) => {
          logger.debug({ event: EVENTS.controlRequest, cmd: request.cmd }, 'control request');
          switch (request.cmd) {
            case 'status':
              return { ok: true, status: daemon.status() };
            case 'reload':
              return reload('control');
            case 'unverify':
              return unverifyRequest(daemon, request);
            case 'invites':
              return enrollment.control(request);
            default:
              return { ok: false, error: `unknown control command ${JSON.stringify(request.cmd)}` };
          }
        },
        logger,
      ),
    (c) => c.close(),
  );
  let metricsServer: MetricsServer | undefined;
  if (config.metricsListen !== undefined) {
    const listen = config.metricsListen;
    metrics = new ServerMetrics(() => daemon.status());
    const registry = metrics.registry;
    metricsServer = await resources.acquire(
      `metrics_listen ${listen.host}:${listen.port}`,
      () => startMetricsServer(listen, registry),
      (m) => m.close(),
    );
  }
  const address = await resources.acquire(
    `listen ${config.listen.host}:${config.listen.port}`,
    () => daemon.start(),
    () => daemon.shutdown(),
  );
  // Logged after the WebSocket listener's line, as before the start-up order changed.
  if (metricsServer !== undefined) {
    const a = metricsServer.address();
    logger.info({ event: EVENTS.listen, kind: 'metrics', host: a.host, port: a.port }, `metrics on http://${a.host}:${a.port}/metrics`);
  }
  const run = runUntilStopped({
    logger,
    stop: async () => {
      await daemon.shutdown();
      await control.close();
      await metricsServer?.close();
      capture?.close();
    },
    reload: () => void reload('SIGHUP'),
  });
  run.ready(`listening on ${address.host}:${address.port} with ${peers.size} peers`);
  await run.stopped;
}

/** `twoway unverify --peer NAME | --identity ID` over the control socket. */
function unverifyRequest(daemon: ServerDaemon, request: ControlRequest): ControlReply {
  const peer = typeof request.peer === 'string' ? request.peer.slice(0, 320) : undefined;
  const identity = typeof request.identity === 'string' ? request.identity.slice(0, 320) : undefined;
  if ((peer === undefined) === (identity === undefined)) return { ok: false, error: 'unverify: give exactly one of peer or identity' };
  return { ok: true, ...daemon.unverify(peer !== undefined ? { peer } : { identity: identity! }) };
}

/** A certificate or key that OpenSSL cannot use is a config error (exit 3), found before anything listens. */
function checkTlsPair(pair: { cert: Buffer; key: Buffer }, files: { certFile: string; keyFile: string }): void {
  try {
    tls.createSecureContext({ cert: pair.cert, key: pair.key });
  } catch (err) {
    // OpenSSL's text names the failing step (no PEM, key does not match the certificate), never key bytes.
    const why = (err as Error).message.replace(/^error:[0-9A-F]+:/, '');
    throw new ConfigError('ERR_CONFIG_FILE', `tls_cert_file ${files.certFile} / tls_key_file ${files.keyFile}: not a usable certificate and key (${why})`, {
      cause: err,
    });
  }
}
