/**
 * The optional sock_diag addon (src/forward/native/sock-diag.c, built by `npm ci` on Linux where a
 * C compiler and Node's headers exist): the owner of an accepted loopback connection's other end
 * asked of the kernel by its four-tuple, about 15 us, where reading /proc/self/net/tcp{,6} costs
 * milliseconds once many sockets exist (peer-owner.ts). Loading never throws; a lookup that
 * netlink itself refuses (seccomp, systemd's RestrictAddressFamilies= without AF_NETLINK) turns the
 * addon off for the process and the caller reads /proc instead.
 */
import { createRequire } from 'node:module';
import { isIPv4, isIPv6 } from 'node:net';
import type { AcceptedEnds } from './peer-owner.js';

/** What sock-diag.c exports: [uid, inode, state] or null when the kernel has no such socket. */
export interface SockDiagBinding {
  lookup(family: 4 | 6, local: Uint8Array, localPort: number, remote: Uint8Array, remotePort: number): [number, number, number] | null;
}

export type SockDiagLoader = () => SockDiagBinding;

/** Where scripts/build-native.mjs puts the addon, seen from dist/forward/ and from src/forward/ (vitest). */
const ADDON_PATHS = ['./twoway-sock-diag.node', '../../dist/forward/twoway-sock-diag.node'];

export const defaultSockDiagLoader: SockDiagLoader = () => {
  const require = createRequire(import.meta.url);
  let firstError: unknown;
  for (const path of ADDON_PATHS) {
    try {
      return require(path) as SockDiagBinding;
    } catch (err) {
      firstError ??= err;
    }
  }
  throw firstError;
};

/** TCP_TIME_WAIT in the kernel's numbering: a closed socket, printed with uid 0. */
const TCP_TIME_WAIT = 6;
/** TCP_LISTEN: never the connecting end. */
const TCP_LISTEN = 10;

function ipv4Bytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split('.').map(Number));
}

function ipv6Bytes(ip: string): Uint8Array | undefined {
  const [head = '', tail] = ip.split('::', 2);
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  // A trailing dotted quad (::ffff:1.2.3.4) is two groups.
  const expand = (groups: string[]): string[] =>
    groups.flatMap((g) => {
      if (!isIPv4(g)) return [g];
      const b = ipv4Bytes(g);
      return [((b[0]! << 8) | b[1]!).toString(16), ((b[2]! << 8) | b[3]!).toString(16)];
    });
  const hh = expand(h);
  const tt = expand(t);
  const groups = tail === undefined ? hh : [...hh, ...Array<string>(Math.max(0, 8 - hh.length - tt.length)).fill('0'), ...tt];
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  }
  return out;
}

const V4_MAPPED_PREFIX = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff);

function mapped(v4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out.set(V4_MAPPED_PREFIX, 0);
  out.set(v4, 12);
  return out;
}

/** "The kernel knows no such live socket" vs "ask /proc": the addon is off or could not say. */
export type NativeOwner = { readonly known: true; readonly uid: number } | { readonly known: false };

const UNKNOWN: NativeOwner = { known: false };

/**
 * Owner lookups through the addon. `ownerOf` answers `known: true` with the uid of the live
 * connecting socket of `ends` (its local end is our peer's address, its remote end ours), or
 * `known: false` when the addon is missing, has been turned off, or found nothing: the caller
 * then reads /proc, which stays the authority for anything the exact lookup did not find.
 */
export class NativeOwnerLookup {
  #binding: SockDiagBinding | undefined;
  /** Why the addon is not used, once it is not. */
  #off: string | undefined;

  constructor(loader: SockDiagLoader = defaultSockDiagLoader) {
    if (process.platform !== 'linux') {
      this.#off = `not supported on ${process.platform}`;
      return;
    }
    try {
      this.#binding = loader();
    } catch (err) {
      this.#off = `not loaded (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
  }

  /** undefined while in use; else why not (for the listener's start-up line). */
  get unavailable(): string | undefined {
    return this.#off;
  }

  ownerOf(ends: AcceptedEnds): NativeOwner {
    const binding = this.#binding;
    if (binding === undefined) return UNKNOWN;
    const { remoteAddress, remotePort, localAddress, localPort } = ends;
    if (remoteAddress === undefined || remotePort === undefined || localAddress === undefined || localPort === undefined) return UNKNOWN;
    const peer = unwrap(remoteAddress);
    const us = unwrap(localAddress);
    try {
      if (isIPv4(peer) && isIPv4(us)) {
        // An IPv4 connection: an AF_INET socket, or a dual-stack AF_INET6 one with v4-mapped ends.
        const p = ipv4Bytes(peer);
        const u = ipv4Bytes(us);
        return answer(binding.lookup(4, p, remotePort, u, localPort) ?? binding.lookup(6, mapped(p), remotePort, mapped(u), localPort));
      }
      const p = isIPv6(peer) ? ipv6Bytes(peer) : undefined;
      const u = isIPv6(us) ? ipv6Bytes(us) : undefined;
      if (p === undefined || u === undefined) return UNKNOWN;
      return answer(binding.lookup(6, p, remotePort, u, localPort));
    } catch (err) {
      // netlink refused (EAFNOSUPPORT, EPERM, ...): the same next time, so stop asking.
      this.#binding = undefined;
      this.#off = `netlink refused (${(err as Error).message})`;
      return UNKNOWN;
    }
  }
}

/** Scope ids dropped, IPv4-mapped IPv6 unwrapped to IPv4. */
function unwrap(ip: string): string {
  const host = ip.split('%', 1)[0]!.toLowerCase();
  return host.startsWith('::ffff:') && isIPv4(host.slice(7)) ? host.slice(7) : host;
}

function answer(found: [number, number, number] | null): NativeOwner {
  if (found === null) return UNKNOWN;
  const [uid, inode, state] = found;
  // A time-wait entry (inode 0) or a listener is not the connecting socket: /proc decides.
  if (inode === 0 || state === TCP_TIME_WAIT || state === TCP_LISTEN) return UNKNOWN;
  return { known: true, uid };
}
