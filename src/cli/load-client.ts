import fs from 'node:fs';
import { loadClientConfig, type ClientConfig } from '../config/client-config.js';
import { readPskFile } from '../config/key-file.js';
import { parseLocalListen } from '../config/local-listen.js';
import { decodeKey } from '../crypto/keys.js';
import { ConfigError } from '../errors.js';
import type { ClientDaemonOptions, ClientForward } from '../daemon/client.js';
import type { Logger } from '../log/logger.js';
import { muxLimitsFrom, sessionLimitsFrom } from './limits-map.js';
import { loadKeyPair } from './load-server.js';

export interface ClientOverrides {
  /** `LISTEN=TARGET` one-off forwards from the command line. */
  readonly forward?: readonly string[];
  /** `LISTEN` one-off SOCKS5 listeners. */
  readonly socks?: readonly string[];
  /** Only the command-line forwards (twoway connect and one-off runs). */
  readonly noConfigForwards?: boolean;
}

/** Parses `--forward 127.0.0.1:2222=db.corp:22`. */
export function parseForwardSpec(spec: string): ClientForward {
  const eq = spec.indexOf('=');
  if (eq <= 0 || eq === spec.length - 1) {
    throw new ConfigError('ERR_CONFIG', `--forward ${JSON.stringify(spec)}: expected LISTEN=TARGET, e.g. 127.0.0.1:2222=db.corp.example:22 or unix:/run/user/1000/db.sock=db.corp.example:22`);
  }
  const listen = parseLocalListen(spec.slice(0, eq));
  return { listen, target: spec.slice(eq + 1) };
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
  const config = loadClientConfig(file, { env });
  const staticKeyPair = loadKeyPair(config.privateKeyFile);
  const psk = config.pskFile !== undefined ? readPskFile(config.pskFile) : undefined;
  const serverPublicKeys = config.serverPublicKeys.map((k, i) => decodeKey(k, `${file}: [client].server_public_key #${i + 1}`));
  let ca: Buffer | undefined;
  if (config.caFile !== undefined) {
    try {
      ca = fs.readFileSync(config.caFile);
    } catch (err) {
      throw new ConfigError('ERR_CONFIG_FILE', `${file}: [client].ca_file: ${config.caFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  const forwards = [
    ...(overrides.noConfigForwards ? [] : config.forwards.map((f) => ({ listen: f.listen, access: f.access, target: f.target }))),
    ...(overrides.forward ?? []).map(parseForwardSpec),
  ];
  const socks = [
    ...(overrides.noConfigForwards ? [] : config.socks.map((s) => ({ listen: s.listen, access: s.access }))),
    ...(overrides.socks ?? []).map((s) => ({ listen: parseLocalListen(s) })),
  ];
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
      devicePins: devicePins(config),
      services: config.services,
      sessionLimits: sessionLimitsFrom(config.limits),
      muxLimits: muxLimitsFrom(config.limits),
      logger,
    },
  };
}
