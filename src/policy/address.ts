/**
 * Target addresses: parsing `host:port`, and normalising every spelling of an address before it
 * is checked (SECURITY.md #4). The system resolver accepts `127.1`, `0x7f.1`, `0177.0.0.1` and
 * `2130706433` as 127.0.0.1 while net.isIP() calls them no address, so they are parsed here the
 * way inet_aton does and never passed on as names. IPv4-mapped, NAT64 and 6to4 IPv6 addresses
 * are mapped back to the IPv4 address they reach before any check.
 */
import net from 'node:net';
import { ForwardError } from '../errors.js';
import { splitHostPort } from '../lib/host-port.js';

export interface Target {
  /** Lower-case host name without a trailing dot, or a canonical IP address. */
  readonly host: string;
  readonly port: number;
  /** 4 or 6 when `host` is an address, 0 for a name. */
  readonly family: 0 | 4 | 6;
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const MAX_NAME_CHARS = 253;

function invalid(text: string, why: string): ForwardError {
  return new ForwardError('ERR_TARGET_INVALID', `target ${JSON.stringify(text.slice(0, 300))}: ${why}`);
}

/** Parses one inet_aton part: decimal, 0x hex or 0-prefixed octal. */
function atonPart(part: string): number | undefined {
  if (/^0x[0-9a-f]*$/i.test(part)) return part.length === 2 ? 0 : parseInt(part.slice(2), 16);
  if (/^0[0-7]*$/.test(part)) return parseInt(part, 8);
  if (/^[1-9][0-9]*$/.test(part)) return Number(part);
  return undefined;
}

/** IPv4 in every form inet_aton accepts (1 to 4 parts), as a dotted quad; undefined otherwise. */
export function parseLegacyIPv4(text: string): string | undefined {
  const parts = text.split('.');
  if (parts.length < 1 || parts.length > 4 || parts.some((p) => p === '')) return undefined;
  const values = parts.map(atonPart);
  if (values.some((v) => v === undefined || !Number.isFinite(v))) return undefined;
  const nums = values as number[];
  const last = nums[nums.length - 1]!;
  const lead = nums.slice(0, -1);
  if (lead.some((v) => v > 255)) return undefined;
  const lastMax = 2 ** (8 * (5 - nums.length)) - 1;
  if (last > lastMax) return undefined;
  let value = last;
  lead.forEach((v, i) => (value += v * 2 ** (8 * (3 - i))));
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Expands a valid IPv6 address (net.isIPv6) to its 8 16-bit groups. */
function ipv6Groups(address: string): number[] {
  let text = address;
  let tail: number[] = [];
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const octets = dotted[2]!.split('.').map(Number);
    tail = [octets[0]! * 256 + octets[1]!, octets[2]! * 256 + octets[3]!];
    text = dotted[1]!.endsWith('::') ? dotted[1]! : dotted[1]!.slice(0, -1);
  }
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const gap = text.indexOf('::');
  if (gap < 0) return [...parse(text), ...tail];
  const a = parse(text.slice(0, gap));
  const b = parse(text.slice(gap + 2));
  return [...a, ...new Array<number>(8 - tail.length - a.length - b.length).fill(0), ...b, ...tail];
}

/** Canonical (RFC 5952) text of an IPv6 address. */
export function canonicalIPv6(address: string): string {
  const groups = ipv6Groups(address);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/**
 * The IPv4 address an IPv6 address really reaches, for IPv4-mapped (::ffff:0:0/96), NAT64
 * (64:ff9b::/96), IPv4-compatible (::/96, not :: or ::1) and 6to4 (2002::/16); else undefined.
 */
export function embeddedIPv4(address: string): string | undefined {
  const g = ipv6Groups(address);
  const quad = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeros = (from: number, to: number): boolean => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return quad(g[6]!, g[7]!);
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return quad(g[6]!, g[7]!);
  if (g[0] === 0x2002) return quad(g[1]!, g[2]!);
  if (zeros(0, 6) && (g[6]! > 0 || g[7]! > 1)) return quad(g[6]!, g[7]!);
  return undefined;
}

/** Normalises a host: an address in canonical form (IPv4 for mapped forms), or a valid lower-case name. */
export function normalizeHost(raw: string, original = raw): { host: string; family: 0 | 4 | 6 } {
  let host = raw;
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (!net.isIPv6(host)) throw invalid(original, 'only IPv6 addresses go in brackets');
  }
  if (host === '') throw invalid(original, 'empty host');
  if (host.includes('%')) throw invalid(original, 'scoped IPv6 addresses are not accepted');
  if (net.isIPv6(host)) {
    const v4 = embeddedIPv4(host);
    return v4 ? { host: v4, family: 4 } : { host: canonicalIPv6(host), family: 6 };
  }
  const v4 = parseLegacyIPv4(host);
  if (v4 !== undefined) return { host: v4, family: 4 };
  let name = host.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > MAX_NAME_CHARS) throw invalid(original, 'host name length out of range');
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) throw invalid(original, 'not a valid host name or address');
  // All-numeric final labels that inet_aton refused (e.g. 1.2.3.256) are not names either.
  if (/^[0-9]+$/.test(labels[labels.length - 1]!) || /^0x[0-9a-f]*$/.test(labels[labels.length - 1]!)) {
    throw invalid(original, 'not a valid IPv4 address');
  }
  return { host: name, family: 0 };
}

/** Parses a port: 1-65535, decimal digits only. */
export function parsePort(text: string, original: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) throw invalid(original, 'port must be a number from 1 to 65535');
  const port = Number(text);
  if (port < 1 || port > 65535) throw invalid(original, 'port must be a number from 1 to 65535');
  return port;
}

/** Parses `host:port` or `[v6]:port` into a normalised target. */
export function parseTarget(text: string): Target {
  if (typeof text !== 'string' || text.length === 0 || text.length > 300) throw invalid(String(text), 'expected host:port');
  const split = splitHostPort(text);
  if (!split.ok) {
    throw invalid(
      text,
      split.problem === 'unclosed-bracket'
        ? 'expected [IPv6]:port'
        : split.problem === 'no-port'
          ? 'expected host:port'
          : 'IPv6 addresses go in brackets: [addr]:port',
    );
  }
  if (split.bracketed && !net.isIPv6(split.host)) throw invalid(text, 'not an IPv6 address in brackets');
  const hostPart = split.host;
  const portPart = split.port;
  const port = parsePort(portPart, text);
  const { host, family } = normalizeHost(hostPart, text);
  return { host, port, family };
}
