/**
 * The server's config file: `[server]` and optional `[limits]`. Paths resolve against the file's
 * folder. Key files and the peers file are only named here; the daemon reads them (and
 * `checkConfig` validates them) so a reload re-reads them too.
 */
import { TableReader } from './fields.js';
import { readListen, type ListenAddress } from './listen-address.js';
import { readServerLimits, type ServerLimits } from './limits.js';
import { deepFreeze, readTomlFile, resolveAgainst } from './toml-file.js';
import { TrustedProxies } from '../transport/trusted-proxies.js';
import type { TomlTable } from './fields.js';
import { readVerifyConfig, type VerifyConfig } from './verify-config.js';

export const DEFAULT_SERVER_PATH = '/twoway';
export const DEFAULT_SERVER_CONTROL_SOCKET = '/run/twoway/server.sock';
/** Time given to open streams to finish after SIGTERM before they are reset. */
export const SHUTDOWN_GRACE_MS = 10_000;
const MAX_SHUTDOWN_GRACE_MS = 10 * 60_000;
/** A WebSocket path: absolute, URL-safe, no query or fragment. */
const WS_PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,255}$/;
export const MAX_TRUSTED_PROXIES = 256;
/** `invites_file` default, resolved against the folder of `peers_file`. */
export const DEFAULT_INVITES_FILE = 'invites.json';

function isWebSocketUrl(text: string): boolean {
  if (text.length > 512) return false;
  try {
    const url = new URL(text);
    return (url.protocol === 'ws:' || url.protocol === 'wss:') && url.host !== '' && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

export interface ServerConfig {
  /** The config file as given. */
  readonly file: string;
  readonly listen: ListenAddress;
  readonly path: string;
  readonly privateKeyFile: string;
  readonly peersFile: string;
  /** Invitations (`invites_file`, default invites.json beside the peers file; 0600, the daemon writes it). */
  readonly invitesFile: string;
  /** The URL `twoway invite` puts in tokens (`public_url`), when set. */
  readonly publicUrl?: string;
  readonly requirePsk: boolean;
  /** Both or neither: serve wss:// directly. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  readonly controlSocket: string;
  readonly metricsListen?: ListenAddress;
  readonly shutdownGraceMs: number;
  /** Addresses and CIDR ranges of reverse proxies whose word on the client address is taken. */
  readonly trustedProxies: readonly string[];
  /** The same, compiled once here; undefined when there are none. */
  readonly proxySet?: TrustedProxies;
  /** Trusted proxies send a PROXY protocol v2 header (else: X-Forwarded-For). */
  readonly proxyProtocol: boolean;
  readonly limits: ServerLimits;
  /** `[verify]`: TOTP secrets and wrong-code limits (verify-config.ts). */
  readonly verify: VerifyConfig;
}

/** Validates a parsed server document; exported for checkConfig. */
export function readServerTable(file: string, table: TomlTable): ServerConfig {
  const top = new TableReader(file, '', table);
  const s = top.optionalTable('server');
  if (s === undefined) throw top.fail('server', 'required table [server] is missing');
  const limits = readServerLimits(top.optionalTable('limits'));
  const verifyTable = top.optionalTable('verify');
  top.done();

  const listen = readListen(s, 'listen');
  if (listen === undefined) throw s.fail('listen', 'required key is missing');
  const wsPath = s.optionalString('path') ?? DEFAULT_SERVER_PATH;
  if (!WS_PATH.test(wsPath)) throw s.fail('path', `expected an absolute URL path like "/twoway", got ${JSON.stringify(wsPath.slice(0, 64))}`);
  const privateKeyFile = resolveAgainst(file, s.string('private_key_file'));
  const peersFile = resolveAgainst(file, s.string('peers_file'));
  const invitesFile = resolveAgainst(peersFile, s.optionalString('invites_file') ?? DEFAULT_INVITES_FILE);
  const publicUrl = s.optionalString('public_url');
  if (publicUrl !== undefined && !isWebSocketUrl(publicUrl)) {
    throw s.fail('public_url', `expected the URL clients dial, ws://HOST[:PORT]/PATH or wss://..., got ${JSON.stringify(publicUrl.slice(0, 80))}`);
  }
  const requirePsk = s.boolean('require_psk', false);
  const cert = s.optionalString('tls_cert_file');
  const key = s.optionalString('tls_key_file');
  if ((cert === undefined) !== (key === undefined)) {
    throw s.fail(cert === undefined ? 'tls_cert_file' : 'tls_key_file', 'tls_cert_file and tls_key_file go together: set both or neither');
  }
  const controlSocket = resolveAgainst(file, s.optionalString('control_socket') ?? DEFAULT_SERVER_CONTROL_SOCKET);
  const metricsListen = readListen(s, 'metrics_listen');
  const shutdownGraceMs = s.int('shutdown_grace_ms', SHUTDOWN_GRACE_MS, { min: 0, max: MAX_SHUTDOWN_GRACE_MS });
  const trustedProxies = s.stringList('trusted_proxies');
  if (trustedProxies.length > MAX_TRUSTED_PROXIES) throw s.fail('trusted_proxies', `at most ${MAX_TRUSTED_PROXIES} entries, got ${trustedProxies.length}`);
  let proxySet: TrustedProxies | undefined;
  try {
    if (trustedProxies.length > 0) proxySet = new TrustedProxies(trustedProxies);
  } catch (err) {
    // Name the first bad entry (only on failure is each entry compiled alone).
    trustedProxies.forEach((entry, i) => {
      try {
        new TrustedProxies([entry]);
      } catch (one) {
        throw s.fail(`trusted_proxies[${i}]`, (one as Error).message);
      }
    });
    throw err;
  }
  const proxyProtocol = s.boolean('proxy_protocol', false);
  if (proxyProtocol && trustedProxies.length === 0) throw s.fail('proxy_protocol', 'needs trusted_proxies: the addresses allowed to send a PROXY header');
  if (proxyProtocol && cert !== undefined)
    throw s.fail('proxy_protocol', 'is supported for plain ws:// only: terminate TLS at the proxy, or drop tls_cert_file and tls_key_file');
  s.done();
  const verify = readVerifyConfig(verifyTable, peersFile);

  const config: { -readonly [K in keyof ServerConfig]: ServerConfig[K] } = {
    file,
    listen,
    path: wsPath,
    privateKeyFile,
    peersFile,
    invitesFile,
    requirePsk,
    controlSocket,
    shutdownGraceMs,
    trustedProxies,
    proxyProtocol,
    limits,
    verify,
  };
  if (cert !== undefined && key !== undefined) {
    config.tls = { certFile: resolveAgainst(file, cert), keyFile: resolveAgainst(file, key) };
  }
  if (metricsListen !== undefined) config.metricsListen = metricsListen;
  if (publicUrl !== undefined) config.publicUrl = publicUrl;
  if (proxySet !== undefined) config.proxySet = proxySet;
  return deepFreeze(config);
}

/** Loads and validates a server config file. Deeply frozen, camelCase. */
export function loadServerConfig(file: string): ServerConfig {
  return readServerTable(file, readTomlFile(file));
}
