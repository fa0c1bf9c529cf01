import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import type { ControlSocketAccess } from '../config/control-socket-access.js';
import { ConfigError } from '../errors.js';
import { ClientDaemon } from '../client/client-daemon.js';
import { startControlServer, type ControlRequest, type ControlServer, type ControlSocketPermissions } from '../control/control-server.js';
import { serveConnect } from '../control/connect-serve.js';
import { EVENTS } from '../log/events.js';
import { createLogger, type LogLevel } from '../log/logger.js';
import { loadClientOptions, type ClientOverrides } from './load-client.js';
import { StartupResources, runUntilStopped } from './run-daemon.js';

/** How long `twoway reconnect` waits for the attempt it asked for (below the control client's 10 s). */
const RECONNECT_REPLY_WAIT_MS = 8_000;

/** `twoway client --config FILE`: runs the client daemon in the foreground until SIGTERM. */
export async function clientCommand(options: { config: string; logLevel: LogLevel } & ClientOverrides): Promise<void> {
  const logger = createLogger({ level: options.logLevel, base: { role: 'client' } });
  const { config, options: daemonOptions } = loadClientOptions(options.config, process.env, logger, options);
  if (config.controlSocketDir !== undefined) privateRuntimeDir(config.controlSocketDir);
  const daemon = new ClientDaemon(daemonOptions);

  // The control socket and every listener first, the session to the server last: a start that
  // fails closes what it opened and exits before READY=1 (issue 12 item 2).
  const resources = new StartupResources();
  let control: ControlServer | undefined;
  if (config.controlSocket !== undefined) {
    const path = config.controlSocket;
    control = await resources.acquire(
      `control_socket ${path}`,
      () =>
        startControlServer(
          path,
          async (request: ControlRequest, socket: net.Socket) => {
            logger.debug({ event: EVENTS.controlRequest, cmd: request.cmd }, 'control request');
            if (request.cmd === 'status') return { ok: true, status: daemon.status() };
            if (request.cmd === 'reconnect') return { ok: true, ...(await daemon.reconnectNow(RECONNECT_REPLY_WAIT_MS)) };
            if (request.cmd === 'verify' && typeof request.message === 'object' && request.message !== null) {
              return { ok: true, answer: await daemon.verify(request.message as Record<string, unknown>) };
            }
            if (request.cmd === 'connect' && typeof request.target === 'string') {
              serveConnect((target) => daemon.openStream(target), request.target, socket);
              return 'taken';
            }
            return { ok: false, error: `unknown control command ${JSON.stringify(request.cmd)}` };
          },
          logger,
          controlPermissions(config.controlSocketAccess, config.file),
        ),
      (c) => c.close(),
    );
  }
  await resources.acquire(
    'local listener',
    () => daemon.listen(),
    () => daemon.stop(),
  );
  daemon.connect();
  /** SIGHUP: re-read the config's forwards and SOCKS listeners; a broken file changes nothing. */
  const reload = async (): Promise<void> => {
    try {
      const next = loadClientOptions(options.config, process.env, logger, options).options;
      const devices = daemon.setDevices(next.devicePins ?? new Map(), next.services ?? []);
      const result = await daemon.setListeners(next.forwards, next.socks);
      logger.info(
        { event: EVENTS.reload, trigger: 'SIGHUP', ...result, serviceStreamsReset: devices.reset },
        `listeners reloaded: ${result.added} added, ${result.removed} removed, ${result.kept} kept; ${devices.reset} service streams reset`,
      );
    } catch (err) {
      logger.error({ event: EVENTS.reloadFailed, trigger: 'SIGHUP', err: (err as Error).message }, `reload refused: ${(err as Error).message}`);
    }
  };
  const run = runUntilStopped({
    logger,
    stop: async () => {
      await control?.close();
      await daemon.stop();
    },
    reload,
  });
  const listeners = daemon.listenerAddresses();
  run.ready(`client started with ${listeners.length} listeners`);
  await run.stopped;
}

/**
 * The folder of the `$XDG_RUNTIME_DIR` default socket: made 0700 before anything starts; an
 * existing one must be a folder of this user, and is narrowed to 0700.
 */
function privateRuntimeDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (!st.isDirectory() || st.uid !== uid) {
    throw new ConfigError('ERR_CONFIG_FILE', `control socket folder ${dir} is not a folder owned by this user (uid ${uid})`);
  }
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}

/** `control_socket_mode` and `control_socket_group` with the group resolved to its gid (NSS, then /etc/group). */
function controlPermissions(access: ControlSocketAccess, file: string): ControlSocketPermissions {
  if (access.group === undefined) return { mode: access.mode };
  if (/^[0-9]+$/.test(access.group)) return { mode: access.mode, gid: Number(access.group) };
  let entry: string | undefined;
  try {
    entry = execFileSync('getent', ['group', access.group], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    try {
      entry = fs
        .readFileSync('/etc/group', 'utf8')
        .split('\n')
        .find((line) => line.startsWith(`${access.group}:`));
    } catch {
      entry = undefined;
    }
  }
  const gid = entry === undefined ? NaN : Number(entry.split(':')[2]);
  if (!Number.isInteger(gid))
    throw new ConfigError('ERR_CONFIG', `${file}: [client].control_socket_group: no group named ${JSON.stringify(access.group)} on this host`);
  return { mode: access.mode, gid };
}
