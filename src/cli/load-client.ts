import fs from 'node:fs';
import { loadClientConfig, type ClientConfig } from '../config/client-config.js';
import { readPskFile } from '../config/key-file.js';
import { decodeKey } from '../crypto/keys.js';
import { ConfigError } from '../errors.js';
import type { ClientDaemonOptions, ClientForward } from '../client/client-daemon.js';
import type { Logger } from '../log/logger.js';
import { muxLimitsFrom, sessionLimitsFrom } from '../config/limits-map.js';
import { loadKeyPair } from '../config/load-server.js';
import { checkDevicePinned, checkListen, parseForwardFlag } from './targets.js';

export interface ClientOverrides {
  /** `LISTEN=TARGET` one-off forwards from the command line. */
  readonly forward?: readonly string[];
  /** `LISTEN` one-off SOCKS5 listeners. */
  readonly socks?: readonly string[];
  /** Only the command-line forwards (twoway connect and one-off runs). */
  readonly noConfigForwards?: boolean;
}

/** Parses `--forward 127.0.0.1:2222=db.corp:22`; a mistake is a usage error (exit 2). */
export function parseForwardSpec(spec: string): ClientForward {
  return parseForwardFlag(spec);
}

/** `[[device]]` pins as name -> public key. */
export function devicePins(config: ClientConfig): Map<string, Uint8Array> {
  return new Map(config.devices.map((d) => [d.name, decodeKey(d.publicKey, `${config.file}: [[device]] ${d.name} public_key`)]));
}

/** Loads a client config and everything it names into daemon options. */
export function loadClientOptions(
  file: string,
  env: Readonly<Record<string, string | undefined>>,
  logger: Logger,
  overrides: ClientOverrides = {},
): { config: ClientConfig; options: ClientDaemonOptions } {
  // Command-line mistakes first: a usage error (exit 2) whatever the files hold.
  const cliForwards = (overrides.forward ?? []).map(parseForwardSpec);
  const cliSocks = (overrides.socks ?? []).map((s) => ({ listen: checkListen(s, `-D ${JSON.stringify(s.slice(0, 80))}`) }));
  const config = loadClientConfig(file, { env });
  const staticKeyPair = loadKeyPair(config.privateKeyFile);
  const psk = config.pskFile !== undefined ? readPskFile(config.pskFile) : undefined;
  const serverPublicKeys = config.serverPublicKeys.map((k, i) => decodeKey(k, `${file}: [client].server_public_key #${i + 1}`));
  let ca: Buffer | undefined;
  if (config.caFile !== undefined) {
    try {
      ca = fs.readFileSync(config.caFile);
    } catch (err) {
      throw new ConfigError(
        'ERR_CONFIG_FILE',
        `${file}: [client].ca_file: ${config.caFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }
  const forwards = [
    ...(overrides.noConfigForwards ? [] : config.forwards.map((f) => ({ listen: f.listen, access: f.access, target: f.target }))),
    ...cliForwards,
  ];
  const socks = [...(overrides.noConfigForwards ? [] : config.socks.map((s) => ({ listen: s.listen, access: s.access }))), ...cliSocks];
  const pins = devicePins(config);
  for (const f of cliForwards) checkDevicePinned(f.target, pins, '-L TARGET', file);
  return {
    config,
    options: {
      serverUrls: config.serverUrls,
      serverPublicKeys,
      staticKeyPair,
      ...(psk ? { psk } : {}),
      ...(config.proxy ? { proxy: config.proxy } : {}),
      ...(ca ? { ca } : {}),
      forwards,
      socks,
      reconnectMinMs: config.reconnectMinMs,
      reconnectMaxMs: config.reconnectMaxMs,
      connectWaitMs: config.connectWaitMs,
      dialTimeoutMs: config.limits.dialTimeoutMs,
      openQueueWaitMs: config.limits.openQueueWaitMs,
      devicePins: pins,
      services: config.services,
      sessionLimits: sessionLimitsFrom(config.limits),
      muxLimits: muxLimitsFrom(config.limits),
      logger,
    },
  };
}
