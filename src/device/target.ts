/**
 * How a stream names a device service, on every hop (docs/PROTOCOL.md, "Device endpoints"):
 *
 * - users write `DEVICE:SERVICE` (a port that is a service name, not a number), or the host name
 *   `SERVICE.DEVICE.twoway` with any port (for SOCKS5 clients and `ssh -o ProxyCommand='twoway
 *   connect %h:%p' ssh.build1.twoway`, which can only carry a host and a numeric port);
 * - the server relays a permitted open into the device's session with a *relayed target* that
 *   says which service, which user (as the server authenticated it) and how the stream is carried;
 * - a device announces the names of its services on a stream with the reserved target `@services`.
 *
 * Device names are peer names (PEER_NAME); service names are short identifiers without dots, so
 * both forms parse without ambiguity.
 */
import { E2EError } from '../errors.js';

/** Service names: a letter, then letters, digits, `_` or `-`; at most 32 characters. */
export const SERVICE_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
/** Device names are peer names. */
export const DEVICE_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** The reserved host-name suffix: `SERVICE.DEVICE.twoway`. */
export const DEVICE_HOST_SUFFIX = '.twoway';
/** The target of the stream on which a device announces its services. */
export const ANNOUNCE_TARGET = '@services';
/** Upper bound on an announcement (JSON), bytes. */
export const MAX_ANNOUNCEMENT_BYTES = 8 * 1024;
/** Upper bound on services a device may expose. */
export const MAX_SERVICES = 64;

/** A device service as a user names it. */
export interface DeviceTarget {
  readonly device: string;
  readonly service: string;
}

/**
 * Parses `DEVICE:SERVICE` or `SERVICE.DEVICE.twoway:PORT` (the port is ignored; the suffix in any
 * case, with at most one trailing dot); undefined for a plain `host:port` target. Throws ERR_DEVICE_TARGET for a name that is reserved but malformed.
 */
export function parseDeviceTarget(target: string): DeviceTarget | undefined {
  const colon = target.lastIndexOf(':');
  if (colon <= 0 || target.startsWith('[')) return undefined;
  const host = target.slice(0, colon);
  const port = target.slice(colon + 1);
  if (host.includes(':')) return undefined;
  if (!/^[0-9]+$/.test(port)) {
    if (!DEVICE_NAME.test(host) || !SERVICE_NAME.test(port)) {
      throw new E2EError('ERR_DEVICE_TARGET', `device target: expected DEVICE:SERVICE, got ${JSON.stringify(target.slice(0, 80))}`);
    }
    return { device: host, service: port };
  }
  // A fully qualified `SERVICE.DEVICE.twoway.` (one trailing dot, as DNS spells an absolute name)
  // is the same device name: it must never fall through to the ordinary policy and a resolver.
  const bare = host.endsWith('.') ? host.slice(0, -1) : host;
  if (!bare.toLowerCase().endsWith(DEVICE_HOST_SUFFIX)) {
    if (host.replace(/\.+$/, '').toLowerCase().endsWith(DEVICE_HOST_SUFFIX)) {
      throw new E2EError('ERR_DEVICE_TARGET', `device host name: at most one trailing dot, got ${JSON.stringify(host.slice(0, 80))}`);
    }
    return undefined;
  }
  const name = bare.slice(0, bare.length - DEVICE_HOST_SUFFIX.length);
  const dot = name.indexOf('.');
  const service = dot < 0 ? '' : name.slice(0, dot);
  const device = dot < 0 ? '' : name.slice(dot + 1);
  if (!SERVICE_NAME.test(service) || !DEVICE_NAME.test(device)) {
    throw new E2EError('ERR_DEVICE_TARGET', `device host name: expected SERVICE.DEVICE${DEVICE_HOST_SUFFIX}, got ${JSON.stringify(host.slice(0, 80))}`);
  }
  return { device, service };
}

/** The canonical form, `DEVICE:SERVICE`. */
export function formatDeviceTarget(t: DeviceTarget): string {
  return `${t.device}:${t.service}`;
}

/**
 * How a relayed stream is carried: `e2e`, an inner Noise session between the user and the device
 * (the server relays ciphertext); `reverse`, a plain TCP connection the server accepted on a
 * reverse listener (the server sees the bytes, as any TCP relay does).
 */
export type RelayMode = 'e2e' | 'reverse';

/** What the server tells a device about a stream it relays. */
export interface RelayedOpen {
  readonly service: string;
  readonly mode: RelayMode;
  /** The user's peer name on the server (`mode: e2e`), or `reverse` for a reverse listener. */
  readonly user: string;
  /** The user's static public key, canonical base64 (`mode: e2e`); '' for `reverse`. */
  readonly userKey: string;
}

const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

/** `svc=ssh;mode=e2e;user=alice;key=BASE64` (printable ASCII, well under 512 bytes). */
export function encodeRelayedTarget(r: RelayedOpen): string {
  return `svc=${r.service};mode=${r.mode};user=${r.user};key=${r.userKey}`;
}

/** Parses a relayed target; undefined when it is not one (a device refuses such opens). */
export function decodeRelayedTarget(target: string): RelayedOpen | undefined {
  const m = /^svc=([^;]+);mode=(e2e|reverse);user=([^;]+);key=([^;]*)$/.exec(target);
  if (m === null) return undefined;
  const [, service, mode, user, userKey] = m as unknown as [string, string, RelayMode, string, string];
  if (!SERVICE_NAME.test(service) || !DEVICE_NAME.test(user)) return undefined;
  if (mode === 'e2e' ? !BASE64_KEY.test(userKey) : userKey !== '') return undefined;
  return { service, mode, user, userKey };
}

/** The announcement a device writes on its `@services` stream. */
export function encodeAnnouncement(services: readonly string[]): Buffer {
  return Buffer.from(JSON.stringify({ services: [...services] }), 'utf8');
}

/** Parses an announcement; throws ERR_DEVICE_TARGET when it is malformed or too large. */
export function decodeAnnouncement(bytes: Uint8Array): string[] {
  const fail = (why: string): never => {
    throw new E2EError('ERR_DEVICE_TARGET', `device announcement: ${why}`);
  };
  if (bytes.length > MAX_ANNOUNCEMENT_BYTES) fail(`over ${MAX_ANNOUNCEMENT_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return fail('not JSON');
  }
  const list = (doc as { services?: unknown } | null)?.services;
  if (!Array.isArray(list) || list.length > MAX_SERVICES) return fail(`expected {"services": [...]} with at most ${MAX_SERVICES} names`);
  const names = list.map((s) => (typeof s === 'string' && SERVICE_NAME.test(s) ? s : fail('bad service name')));
  return [...new Set(names)];
}
