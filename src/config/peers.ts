/**
 * The peers file (the server's allowlist): `[[peer]]` tables naming each client key, its optional
 * psk file and its access rules. The server re-reads it on reload; `twoway peers add|set|remove`
 * rewrites it with `savePeers`, which does not keep comments (the header it writes says so).
 */
import type * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'smol-toml';
import { ConfigError } from '../errors.js';
import { DEVICE_NAME, SERVICE_NAME } from '../device/target.js';
import { compileRules, type AccessRules } from '../policy/access-rules.js';
import { DeviceRules } from '../policy/device-rules.js';
import { KEY_BASE64_CHARS, isBase64Key } from './base64-key.js';
import { TableReader, type TomlTable } from './fields.js';
import { formatHostPort } from '../lib/host-port.js';
import { statIfExists, writeFileAtomic } from '../lib/atomic-file.js';
import { parseListenAddress } from './listen-address.js';
import { deepFreeze, parseToml, readTomlFile, resolveAgainst } from './toml-file.js';

/** Peer names: short, printable, safe in logs and file names. */
export const PEER_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** Upper bound on `[[peer]]` tables in one file. */
export const MAX_PEERS = 10_000;
/** Upper bound on access rules per peer. */
export const MAX_RULES_PER_PEER = 1_000;
/** Mode of a new peers file: it holds no secrets (psks live in their own 0600 files). */
export const PEERS_FILE_MODE = 0o644;

export type PeerKind = 'user' | 'device';

/** One allowlisted client as written in the file (what `twoway peers` edits and savePeers writes). */
export interface PeerEntry {
  readonly name: string;
  /** Canonical base64 of the peer's static public key (44 characters). */
  readonly publicKey: string;
  /** Absolute path of the peer's psk file, when it has one. */
  readonly pskFile?: string;
  /** Access rules, `HOST:PORTS`, as written (compiled into PeerConfig.rules). */
  readonly allow: readonly string[];
  readonly kind: PeerKind;
  /** Device services this peer may reach, `DEVICE:SERVICE` (either part may be `*`). */
  readonly devices: readonly string[];
  /** A device's reverse listeners, `SERVICE=HOST:PORT` (kind "device" only). */
  readonly reverse: readonly string[];
  /** User verification this peer needs before any stream opens (`verify`, docs/PROTOCOL.md section 13). */
  readonly verify?: PeerVerifyMethod;
  /** How long a verification lasts, across reconnects of the key (`verify_valid_ms`; default VERIFY_VALID_MS when `verify` is set). */
  readonly verifyValidMs?: number;
  /** OIDC: the identity (email or subject) that must sign in with this key (`identity`). */
  readonly identity?: string;
  /** Enrolled by `twoway join`, admitted only after `twoway peers approve NAME` (file key `pending`). */
  readonly pending?: boolean;
}

export type PeerVerifyMethod = 'totp' | 'oidc';
/** Default `verify_valid_ms`: a working day. */
export const VERIFY_VALID_MS = 28_800_000;
/** Bounds of `verify_valid_ms`: one second to 30 days. */
export const MIN_VERIFY_VALID_MS = 1_000;
export const MAX_VERIFY_VALID_MS = 30 * 86_400_000;
/** Upper bound on an `identity` (an email address or an OIDC subject). */
export const MAX_IDENTITY_CHARS = 320;

/**
 * One allowlisted client as loaded: its `allow` and `devices` rules compiled and its `reverse`
 * entries parsed once, here. These three are not enumerable, so what is printed
 * (`twoway peers list --json`) or written back is the file's fields.
 */
export interface PeerConfig extends PeerEntry {
  readonly rules: AccessRules;
  readonly deviceRules: DeviceRules;
  readonly reverseListeners: readonly ReverseEntry[];
}

/**
 * Compiles access rules (`HOST:PORTS`): the one compilation, used by the loader below and for
 * rules given on the command line. Throws ERR_POLICY_BAD_RULE naming the first bad rule.
 */
export function compilePeerRules(allow: readonly string[]): AccessRules {
  return compileRules(allow);
}

/** Upper bound on `devices` and `reverse` entries per peer. */
export const MAX_DEVICE_RULES_PER_PEER = 256;

/** A reverse listener entry, parsed. */
export interface ReverseEntry {
  readonly service: string;
  readonly host: string;
  readonly port: number;
}

/** Parses `SERVICE=HOST:PORT`; undefined when malformed. */
export function parseReverseEntry(text: string): ReverseEntry | undefined {
  const eq = text.indexOf('=');
  if (eq <= 0) return undefined;
  const service = text.slice(0, eq);
  const listen = parseListenAddress(text.slice(eq + 1));
  if (!SERVICE_NAME.test(service) || listen === undefined || listen.port === 0) return undefined;
  return { service, host: listen.host, port: listen.port };
}

/** True for `DEVICE:SERVICE` with `*` allowed for either part. */
export function isDeviceRule(text: string): boolean {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon !== text.lastIndexOf(':')) return false;
  const device = text.slice(0, colon);
  const service = text.slice(colon + 1);
  return (device === '*' || DEVICE_NAME.test(device)) && (service === '*' || SERVICE_NAME.test(service));
}

export interface PeersConfig {
  /** The file as given to loadPeers. */
  readonly file: string;
  readonly peers: readonly PeerConfig[];
}

/** Human description of a bad key value without echoing it (it may be a pasted private key). */
export function describeBadKey(value: string): string {
  return value.length === KEY_BASE64_CHARS
    ? `expected a base64 32-byte key, got ${KEY_BASE64_CHARS} characters that are not one (value not shown)`
    : `expected a base64 32-byte key (${KEY_BASE64_CHARS} characters), got ${value.length} characters (value not shown)`;
}

function readPeer(file: string, t: TableReader): PeerConfig {
  const name = t.string('name');
  if (!PEER_NAME.test(name)) throw t.fail('name', `expected 1-64 characters of [A-Za-z0-9._-], got ${JSON.stringify(name.slice(0, 64))}`);
  const publicKey = t.string('public_key', { secret: true });
  if (!isBase64Key(publicKey)) throw t.fail('public_key', describeBadKey(publicKey));
  const psk = t.optionalString('psk_file');
  const allow = t.stringList('allow');
  if (allow.length > MAX_RULES_PER_PEER) throw t.fail('allow', `at most ${MAX_RULES_PER_PEER} rules, got ${allow.length}`);
  const kind = t.optionalString('kind') ?? 'user';
  if (kind !== 'user' && kind !== 'device') throw t.fail('kind', `expected "user" or "device", got ${JSON.stringify(kind.slice(0, 64))}`);
  const devices = t.stringList('devices');
  if (devices.length > MAX_DEVICE_RULES_PER_PEER) throw t.fail('devices', `at most ${MAX_DEVICE_RULES_PER_PEER} entries, got ${devices.length}`);
  devices.forEach((d, i) => {
    if (!isDeviceRule(d)) throw t.fail(`devices[${i}]`, `expected "DEVICE:SERVICE" (either may be "*"), got ${JSON.stringify(d.slice(0, 80))}`);
  });
  const reverse = t.stringList('reverse');
  if (reverse.length > MAX_DEVICE_RULES_PER_PEER) throw t.fail('reverse', `at most ${MAX_DEVICE_RULES_PER_PEER} entries, got ${reverse.length}`);
  if (reverse.length > 0 && kind !== 'device') throw t.fail('reverse', 'reverse listeners belong to peers of kind = "device"');
  const claimed = new Set<string>();
  const reverseListeners = reverse.map((r, i) => {
    const entry = parseReverseEntry(r);
    if (entry === undefined) throw t.fail(`reverse[${i}]`, `expected "SERVICE=HOST:PORT" (a port above 0), got ${JSON.stringify(r.slice(0, 80))}`);
    const listen = formatHostPort(entry.host, entry.port);
    if (claimed.has(listen)) throw t.fail(`reverse[${i}]`, `${listen} is listed twice`);
    claimed.add(listen);
    return entry;
  });
  const reverseCanonical = reverseListeners.map((e) => `${e.service}=${formatHostPort(e.host, e.port)}`);
  const verification = readPeerVerify(t);
  const pending = t.boolean('pending', false);
  t.done();
  let rules: AccessRules;
  try {
    rules = compilePeerRules(allow);
  } catch (err) {
    throw new ConfigError('ERR_CONFIG', `${file}: ${t.where} (${name}): allow: ${(err as Error).message}`, { cause: err });
  }
  const entry: PeerEntry = {
    name,
    publicKey,
    allow: [...allow],
    kind,
    devices: [...devices],
    reverse: reverseCanonical,
    ...verification,
    ...(pending ? { pending } : {}),
  };
  const peer = psk === undefined ? entry : { ...entry, pskFile: resolveAgainst(file, psk) };
  return Object.defineProperties(peer, {
    rules: { value: rules, enumerable: false },
    deviceRules: { value: new DeviceRules(devices), enumerable: false },
    reverseListeners: { value: Object.freeze(reverseListeners.map((e) => Object.freeze(e))), enumerable: false },
  }) as PeerConfig;
}

/** `verify`, `verify_valid_ms` and `identity` of one `[[peer]]` (only the keys that are set). */
function readPeerVerify(t: TableReader): Pick<PeerEntry, 'verify' | 'verifyValidMs' | 'identity'> {
  const verify = t.optionalString('verify');
  if (verify !== undefined && verify !== 'totp' && verify !== 'oidc')
    throw t.fail('verify', `expected "totp" or "oidc", got ${JSON.stringify(verify.slice(0, 64))}`);
  const validSet = t.has('verify_valid_ms');
  const verifyValidMs = t.int('verify_valid_ms', VERIFY_VALID_MS, { min: MIN_VERIFY_VALID_MS, max: MAX_VERIFY_VALID_MS });
  const identity = t.optionalString('identity');
  if (identity !== undefined && (identity.length === 0 || identity.length > MAX_IDENTITY_CHARS || /[\p{Cc}\p{Cf}]/u.test(identity))) {
    throw t.fail('identity', `expected 1-${MAX_IDENTITY_CHARS} printable characters`);
  }
  if (verify === undefined && (validSet || identity !== undefined)) throw t.fail(validSet ? 'verify_valid_ms' : 'identity', 'needs verify = "totp" or "oidc"');
  if (identity !== undefined && verify !== 'oidc') throw t.fail('identity', 'names the person who signs in with OIDC: needs verify = "oidc"');
  return {
    ...(verify !== undefined ? { verify } : {}),
    ...(validSet ? { verifyValidMs } : {}),
    ...(identity !== undefined ? { identity } : {}),
  };
}

/** Validates a parsed peers document; exported for checkConfig and savePeers. */
export function readPeersTable(file: string, table: TomlTable): PeersConfig {
  const top = new TableReader(file, '', table);
  const peers = top.tableList('peer', MAX_PEERS).map((t) => readPeer(file, t));
  top.done();
  const byName = new Map<string, number>();
  const byKey = new Map<string, string>();
  peers.forEach((peer, i) => {
    const where = `[peer.${i + 1}]`;
    const sameName = byName.get(peer.name);
    if (sameName !== undefined) {
      throw new ConfigError('ERR_CONFIG', `${file}: ${where}.name: duplicate peer name "${peer.name}" (also [peer.${sameName}])`);
    }
    byName.set(peer.name, i + 1);
    const sameKey = byKey.get(peer.publicKey);
    if (sameKey !== undefined) {
      throw new ConfigError('ERR_CONFIG', `${file}: ${where}.public_key: duplicate public key (already used by peer "${sameKey}")`);
    }
    byKey.set(peer.publicKey, peer.name);
  });
  const reverseOwner = new Map<string, string>();
  for (const peer of peers) {
    for (const entry of peer.reverse) {
      const listen = entry.slice(entry.indexOf('=') + 1);
      const other = reverseOwner.get(listen);
      if (other !== undefined && other !== peer.name) {
        throw new ConfigError('ERR_CONFIG', `${file}: peer "${peer.name}": reverse listener ${listen} is also claimed by peer "${other}"`);
      }
      reverseOwner.set(listen, peer.name);
    }
  }
  return deepFreeze({ file, peers });
}

/** Loads and validates a peers file. Deeply frozen. */
export function loadPeers(file: string): PeersConfig {
  return readPeersTable(file, readTomlFile(file));
}

const HEADER = `# twoway peers (the server's allowlist).
# Written by 'twoway peers add|set|remove', which rewrites this file and does not keep comments.
# Each [[peer]]: name, public_key (base64), optional psk_file (mode 0600), allow = ["HOST:PORTS", ...],
# kind = "user" | "device", devices = ["DEVICE:SERVICE", ...] (device services it may reach),
# reverse = ["SERVICE=HOST:PORT", ...] (a device's reverse listeners),
# verify = "totp" | "oidc" (the person must log in), verify_valid_ms, identity (OIDC), pending = true
# (joined by invitation, waiting for 'twoway peers approve NAME'). Reload the server (systemctl reload twoway-server) after editing.

`;

/** The TOML text savePeers writes: psk paths inside the file's folder are written relative. */
export function formatPeers(file: string, peers: readonly PeerEntry[]): string {
  const dir = path.dirname(path.resolve(file));
  const doc = {
    peer: peers.map((p) => {
      const entry: Record<string, unknown> = { name: p.name, public_key: p.publicKey };
      if (p.pskFile !== undefined) {
        const rel = path.relative(dir, p.pskFile);
        entry.psk_file = rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p.pskFile;
      }
      entry.allow = [...p.allow];
      entry.kind = p.kind;
      if (p.devices.length > 0) entry.devices = [...p.devices];
      if (p.reverse.length > 0) entry.reverse = [...p.reverse];
      if (p.verify !== undefined) entry.verify = p.verify;
      if (p.verifyValidMs !== undefined) entry.verify_valid_ms = p.verifyValidMs;
      if (p.identity !== undefined) entry.identity = p.identity;
      if (p.pending === true) entry.pending = true;
      return entry;
    }),
  };
  return HEADER + (peers.length === 0 ? '' : stringify(doc)) + '\n';
}

/**
 * Writes `peers` to `file` atomically: the text is validated by the same reader loadPeers uses,
 * written to a temporary file in the same folder, fsynced, renamed over `file`, and the folder is
 * fsynced. A crash leaves either the old file or the new one, never a torn one. The new file keeps
 * the old one's owner, group and mode (so root editing the service user's file leaves it the
 * service user's); when that owner cannot be kept, nothing is written. A new file gets mode 0644.
 */
export function savePeers(file: string, peers: readonly PeerEntry[]): PeersConfig {
  const text = formatPeers(file, peers);
  const saved = readPeersTable(file, parseToml(file, text));
  const dir = path.dirname(path.resolve(file));
  let before: fs.Stats | undefined;
  try {
    before = statIfExists(file);
    writeFileAtomic(file, text, { mode: PEERS_FILE_MODE });
  } catch (err) {
    throw writeError(file, dir, err, before);
  }
  return saved;
}

function writeError(file: string, dir: string, err: unknown, before?: fs.Stats): ConfigError {
  const code = (err as NodeJS.ErrnoException).code ?? 'error';
  const syscall = (err as NodeJS.ErrnoException).syscall;
  let hint = '';
  if (syscall === 'fchown' && before !== undefined) {
    hint = `: it is owned by uid ${before.uid} gid ${before.gid}, which this user cannot keep; run as root or as its owner`;
  } else if ((code === 'EACCES' || code === 'EPERM') && syscall === 'open') {
    hint = `: the folder ${dir} must be writable by whoever edits the file (an edit is a new file renamed over the old one)`;
  }
  return new ConfigError('ERR_CONFIG_FILE', `${file}: could not be written (${code})${hint}`, { cause: err });
}
