/**
 * The client's config file: `[client]`, `[[forward]]`, `[[socks]]` and optional `[limits]`.
 * The proxy falls back to HTTPS_PROXY / https_proxy from the environment the CLI passes in, the
 * control socket to `$XDG_RUNTIME_DIR/twoway/client.sock`.
 */
import * as path from 'node:path';
import { TableReader, type TomlTable } from './fields.js';
import { readControlSocketAccess, type ControlSocketAccess } from './control-socket-access.js';
import { formatHostPort } from '../lib/host-port.js';
import { parseListenAddress } from './listen-address.js';
import { readLocalListener } from './local-listen.js';
import { formatLocalListen, type LocalAccess, type LocalListen } from '../forward/local-listener.js';
import { readClientLimits, type ClientLimits } from './limits.js';
import { isBase64Key } from './base64-key.js';
import { DEVICE_NAME, MAX_SERVICES, SERVICE_NAME, parseDeviceTarget } from '../device/target.js';
import type { ServiceConfig } from '../device/agent.js';
import { describeBadKey } from './peers.js';
import { deepFreeze, readTomlFile, resolveAgainst } from './toml-file.js';

export const RECONNECT_MIN_MS = 1_000;
export const RECONNECT_MAX_MS = 60_000;
/** How long a forwarded connection waits for the tunnel to come up before it is refused. */
export const CONNECT_WAIT_MS = 10_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
export const MAX_SERVER_URLS = 16;
export const MAX_SERVER_KEYS = 8;
export const MAX_FORWARDS = 256;
export const MAX_SOCKS = 16;
export const MAX_DEVICE_PINS = 1_024;
/** Entries in one service's `allow` list. */
export const MAX_SERVICE_ALLOW = 1_024;

/** A device whose key this user pins (`[[device]]`): streams to it are end to end. */
export interface DevicePinConfig {
  readonly name: string;
  /** Canonical base64 of the device's static public key. */
  readonly publicKey: string;
}

/** A service this client exposes as a device agent (`[[service]]`); the agent owns its shape. */
export type { ServiceConfig };

/**
 * Why a service's `allow` entry is refused, or undefined when it is a base64 key, `NAME=KEY` or
 * "*". A bare name is refused: the server decides which key it presents under a name, so a name
 * alone would let a compromised server act as that user (docs/PROTOCOL.md 11.6).
 */
export function describeBadAllowEntry(entry: string): string | undefined {
  if (entry === '*' || isBase64Key(entry)) return undefined;
  const eq = entry.indexOf('=');
  const shown = JSON.stringify(entry.slice(0, 64));
  if (eq < 0) {
    if (!DEVICE_NAME.test(entry)) return `expected a base64 public key, "NAME=KEY" or "*", got ${shown}`;
    return `allow = ["${entry}"]: a bare name lets a compromised server present any key as ${entry}; write "${entry}=<their public key>"`;
  }
  const name = entry.slice(0, eq);
  if (!DEVICE_NAME.test(name)) return `"NAME=KEY": expected a peer name before "=", got ${shown}`;
  if (!isBase64Key(entry.slice(eq + 1))) return `"NAME=KEY": expected a base64 32-byte public key after "${name}="`;
  return undefined;
}

export interface ForwardConfig {
  /** `host:port`, or a unix socket `{ path }`. */
  readonly listen: LocalListen;
  /** Who besides this user may connect (TCP only). */
  readonly access: LocalAccess;
  /** `host:port` on the server's side. */
  readonly target: string;
}

export interface SocksConfig {
  readonly listen: LocalListen;
  readonly access: LocalAccess;
}

export interface ClientConfig {
  readonly file: string;
  /** Tried in order (failover). */
  readonly serverUrls: readonly string[];
  /** Accepted server keys, canonical base64 (pins; several during a rotation). */
  readonly serverPublicKeys: readonly string[];
  readonly privateKeyFile: string;
  readonly pskFile?: string;
  /** http:// proxy for CONNECT; may hold credentials: never log it. */
  readonly proxy?: string;
  readonly proxySource?: 'config' | 'env';
  readonly caFile?: string;
  readonly controlSocket?: string;
  /** Set when controlSocket is the `$XDG_RUNTIME_DIR` default: the daemon creates this folder (0700). */
  readonly controlSocketDir?: string;
  /** Mode and group of the control socket (`control_socket_mode`, `control_socket_group`). */
  readonly controlSocketAccess: ControlSocketAccess;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly connectWaitMs: number;
  readonly forwards: readonly ForwardConfig[];
  readonly socks: readonly SocksConfig[];
  readonly devices: readonly DevicePinConfig[];
  readonly services: readonly ServiceConfig[];
  readonly limits: ClientLimits;
}

export interface LoadClientOptions {
  /** The process environment, passed in by the CLI (HTTPS_PROXY / https_proxy, XDG_RUNTIME_DIR). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The control socket of a config without `control_socket`: `$XDG_RUNTIME_DIR/twoway/client.sock`, if set. */
export function defaultControlSocket(env: Env): { socket: string; dir: string } | undefined {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime === undefined || !path.isAbsolute(runtime)) return undefined;
  const dir = path.join(runtime, 'twoway');
  return { socket: path.join(dir, 'client.sock'), dir };
}

/** The user's twoway config folder: `$XDG_CONFIG_HOME/twoway`, else `~/.config/twoway`. */
export function userConfigDir(env: Env, homedir: string): string {
  const xdg = env.XDG_CONFIG_HOME;
  return path.join(xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || homedir, '.config'), 'twoway');
}

/** The client config used without `--config`: `$TWOWAY_CONFIG`, else the user's client.toml. */
export function defaultClientConfigFile(env: Env, homedir: string): string {
  return env.TWOWAY_CONFIG || path.join(userConfigDir(env, homedir), 'client.toml');
}

function checkServerUrl(t: TableReader, key: string, text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw t.fail(key, `expected a ws:// or wss:// URL, got ${JSON.stringify(text.slice(0, 64))}`);
  }
  if (url.protocol !== 'wss:' && url.protocol !== 'ws:') throw t.fail(key, `expected a ws:// or wss:// URL, got scheme ${url.protocol}`);
  if (url.username !== '' || url.password !== '') throw t.fail(key, 'credentials in the URL are not supported (the Noise keys authenticate)');
  if (url.hash !== '') throw t.fail(key, 'a URL fragment is not allowed');
  return url.href;
}

/** Checks a proxy URL without echoing it (it may carry user:password). */
function proxyProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'expected an http://host:port proxy URL (value not shown)';
  }
  if (url.protocol !== 'http:') return `expected an http:// proxy URL, got scheme ${url.protocol}`;
  if (url.hostname === '') return 'the proxy URL has no host';
  return undefined;
}

/** Validates a parsed client document; exported for checkConfig. */
export function readClientTable(file: string, table: TomlTable, options: LoadClientOptions = {}): ClientConfig {
  const top = new TableReader(file, '', table);
  const c = top.optionalTable('client');
  if (c === undefined) throw top.fail('client', 'required table [client] is missing');
  const forwards = top.tableList('forward', MAX_FORWARDS).map((t): ForwardConfig => {
    const { listen, access } = readLocalListener(t);
    const target = t.string('target');
    let device;
    try {
      device = parseDeviceTarget(target);
    } catch (err) {
      throw t.fail('target', (err as Error).message);
    }
    if (device !== undefined) {
      t.done();
      return { listen, access, target: `${device.device}:${device.service}` };
    }
    const parsed = parseListenAddress(target);
    if (parsed === undefined)
      throw t.fail('target', `expected "host:port" (IPv6 as "[::1]:port") or "DEVICE:SERVICE", got ${JSON.stringify(target.slice(0, 64))}`);
    t.done();
    return { listen, access, target: formatHostPort(parsed.host, parsed.port) };
  });
  const socks = top.tableList('socks', MAX_SOCKS).map((t): SocksConfig => {
    const { listen, access } = readLocalListener(t);
    t.done();
    return { listen, access };
  });
  const devices = top.tableList('device', MAX_DEVICE_PINS).map((t): DevicePinConfig => {
    const name = t.string('name');
    if (!DEVICE_NAME.test(name)) throw t.fail('name', `expected 1-64 characters of [A-Za-z0-9._-], got ${JSON.stringify(name.slice(0, 64))}`);
    const publicKey = t.string('public_key');
    if (!isBase64Key(publicKey)) throw t.fail('public_key', describeBadKey(publicKey));
    t.done();
    return { name, publicKey };
  });
  const services = top.tableList('service', MAX_SERVICES).map((t): ServiceConfig => {
    const name = t.string('name');
    if (!SERVICE_NAME.test(name)) throw t.fail('name', `expected a letter then up to 31 of [A-Za-z0-9_-], got ${JSON.stringify(name.slice(0, 64))}`);
    const target = t.string('target');
    const parsed = parseListenAddress(target);
    if (parsed === undefined) throw t.fail('target', `expected "host:port" (IPv6 as "[::1]:port"), got ${JSON.stringify(target.slice(0, 64))}`);
    const allow = t.stringList('allow');
    if (allow.length > MAX_SERVICE_ALLOW) throw t.fail('allow', `at most ${MAX_SERVICE_ALLOW} entries, got ${allow.length}`);
    allow.forEach((a, i) => {
      const why = describeBadAllowEntry(a);
      if (why !== undefined) throw t.fail(`allow[${i}]`, why);
    });
    const reverse = t.boolean('reverse', false);
    t.done();
    return { name, target: formatHostPort(parsed.host, parsed.port), allow: [...allow], reverse };
  });
  const limits = readClientLimits(top.optionalTable('limits'));
  top.done();
  const pinned = new Set<string>();
  devices.forEach((d, i) => {
    if (pinned.has(d.name)) throw top.fail(`[device.${i + 1}].name`, `device ${d.name} is pinned twice`);
    pinned.add(d.name);
  });
  const offered = new Set<string>();
  services.forEach((sv, i) => {
    if (offered.has(sv.name)) throw top.fail(`[service.${i + 1}].name`, `service ${sv.name} is defined twice`);
    offered.add(sv.name);
  });
  forwards.forEach((f, i) => {
    const device = parseDeviceTarget(f.target);
    if (device !== undefined && !pinned.has(device.device)) {
      throw top.fail(`[forward.${i + 1}].target`, `no public key pinned for device ${device.device}: add a [[device]] table with its public_key`);
    }
  });

  const urls = c.stringOrList('server_url');
  if (urls === undefined) throw c.fail('server_url', 'required key is missing');
  if (urls.length > MAX_SERVER_URLS) throw c.fail('server_url', `at most ${MAX_SERVER_URLS} URLs, got ${urls.length}`);
  const serverUrls = urls.map((u, i) => checkServerUrl(c, urls.length === 1 ? 'server_url' : `server_url[${i}]`, u));
  const keys = c.stringOrList('server_public_key');
  if (keys === undefined) throw c.fail('server_public_key', 'required key is missing');
  if (keys.length > MAX_SERVER_KEYS) throw c.fail('server_public_key', `at most ${MAX_SERVER_KEYS} keys, got ${keys.length}`);
  keys.forEach((k, i) => {
    if (!isBase64Key(k)) throw c.fail(keys.length === 1 ? 'server_public_key' : `server_public_key[${i}]`, describeBadKey(k));
  });
  const privateKeyFile = resolveAgainst(file, c.string('private_key_file'));
  const psk = c.optionalString('psk_file');
  const proxyText = c.optionalString('proxy', { secret: true });
  const ca = c.optionalString('ca_file');
  const control = c.optionalString('control_socket');
  const controlSocketAccess = readControlSocketAccess(c);
  const reconnectMinMs = c.int('reconnect_min_ms', RECONNECT_MIN_MS, { min: 1, max: MAX_TIMER_MS });
  const reconnectMaxMs = c.int('reconnect_max_ms', RECONNECT_MAX_MS, { min: 1, max: MAX_TIMER_MS });
  if (reconnectMaxMs < reconnectMinMs) throw c.fail('reconnect_max_ms', `must be at least reconnect_min_ms (${reconnectMinMs}), got ${reconnectMaxMs}`);
  const connectWaitMs = c.int('connect_wait_ms', CONNECT_WAIT_MS, { min: 0, max: MAX_TIMER_MS });
  c.done();

  const seen = new Map<string, string>();
  const claim = (address: LocalListen, where: string): void => {
    const key = formatLocalListen(address);
    const other = seen.get(key);
    if (('path' in address || address.port !== 0) && other !== undefined) throw top.fail(`${where}.listen`, `${key} is already used by ${other}`);
    seen.set(key, where);
  };
  forwards.forEach((f, i) => claim(f.listen, `[forward.${i + 1}]`));
  socks.forEach((s, i) => claim(s.listen, `[socks.${i + 1}]`));

  const config: { -readonly [K in keyof ClientConfig]: ClientConfig[K] } = {
    file,
    serverUrls,
    serverPublicKeys: [...keys],
    privateKeyFile,
    controlSocketAccess,
    reconnectMinMs,
    reconnectMaxMs,
    connectWaitMs,
    forwards,
    socks,
    devices,
    services,
    limits,
  };
  if (psk !== undefined) config.pskFile = resolveAgainst(file, psk);
  if (ca !== undefined) config.caFile = resolveAgainst(file, ca);
  if (control !== undefined) config.controlSocket = resolveAgainst(file, control);
  else {
    const fallback = defaultControlSocket(options.env ?? {});
    if (fallback !== undefined) {
      config.controlSocket = fallback.socket;
      config.controlSocketDir = fallback.dir;
    }
  }
  if (proxyText !== undefined) {
    const problem = proxyProblem(proxyText);
    if (problem !== undefined) throw c.fail('proxy', problem);
    config.proxy = proxyText;
    config.proxySource = 'config';
  } else {
    const name = options.env?.HTTPS_PROXY ? 'HTTPS_PROXY' : options.env?.https_proxy ? 'https_proxy' : undefined;
    const fromEnv = name === undefined ? undefined : options.env?.[name];
    if (name !== undefined && fromEnv !== undefined) {
      const problem = proxyProblem(fromEnv);
      if (problem !== undefined) throw top.fail(undefined, `environment variable ${name}: ${problem}`);
      config.proxy = fromEnv;
      config.proxySource = 'env';
    }
  }
  return deepFreeze(config);
}

/** Loads and validates a client config file. Deeply frozen, camelCase. */
export function loadClientConfig(file: string, options: LoadClientOptions = {}): ClientConfig {
  return readClientTable(file, readTomlFile(file), options);
}
