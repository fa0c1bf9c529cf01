/**
 * Per-peer access rules: what targets a peer may reach. Default deny.
 *
 * Syntax of one rule: `HOST:PORTS`
 *   HOST   an exact host name (`db.corp.example`), an IPv4 address, an IPv6 address in brackets
 *          (`[fd00::5]`), or a CIDR range (`10.0.0.0/8`, `[fd00::/8]`). No wildcards, no regexes.
 *   PORTS  `22`, `22,443`, `8000-8100`, combinations (`22,8000-8100`), or `*` for every port.
 *
 * Addresses are checked after resolution (the server resolves names itself and connects to the
 * exact address it checked). Special ranges (this network 0.0.0.0/8, loopback 127/8 and ::1,
 * the unspecified ::, link-local, multicast, broadcast, and the daemon's own addresses) are
 * denied unless an address rule lists them explicitly: a rule whose range lies inside the
 * special range, such as `127.0.0.1:8080` or `127.0.0.0/8:*`. A broad `0.0.0.0/0:*` does not
 * grant them, and neither does a name rule whose name resolves into them (DNS rebinding).
 */
import net from 'node:net';
import { ForwardError } from '../errors.js';
import { embeddedIPv4, normalizeHost, parseLegacyIPv4 } from './address.js';

type PortRange = readonly [number, number];

interface Range {
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

interface AddressRule {
  readonly text: string;
  readonly range: Range;
  readonly ports: readonly PortRange[];
  /** The rule's whole range lies inside a special range: it grants those addresses explicitly. */
  readonly explicitSpecial: boolean;
}

interface NameRule {
  readonly text: string;
  readonly name: string;
  readonly ports: readonly PortRange[];
}

const SPECIAL_RANGES: readonly Range[] = [
  '0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255/32',
  '::/128', '::1/128', 'fe80::/10', 'ff00::/8',
].map((cidr) => {
  const [addr, prefix] = cidr.split('/') as [string, string];
  return { bytes: addressBytes(addr)!, prefix: Number(prefix) };
});

/** 4 or 16 bytes of an address in canonical form (IPv4-mapped forms already folded); else undefined. */
export function addressBytes(address: string): Uint8Array | undefined {
  if (net.isIPv4(address)) return Uint8Array.from(address.split('.').map(Number));
  if (!net.isIPv6(address)) return undefined;
  const v4 = embeddedIPv4(address);
  if (v4) return addressBytes(v4);
  const out = new Uint8Array(16);
  const full = expand(address);
  full.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 255;
  });
  return out;
}

function expand(address: string): number[] {
  const gap = address.indexOf('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  if (gap < 0) return parse(address);
  const a = parse(address.slice(0, gap));
  const b = parse(address.slice(gap + 2));
  return [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b];
}

function inRange(bytes: Uint8Array, range: Range): boolean {
  if (bytes.length !== range.bytes.length) return false;
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i]! & mask) !== (range.bytes[i]! & mask)) return false;
  }
  return true;
}

/** `inner` lies entirely inside `outer`. */
function rangeInside(inner: Range, outer: Range): boolean {
  return inner.prefix >= outer.prefix && inRange(inner.bytes, outer);
}

function bad(rule: string, why: string): ForwardError {
  return new ForwardError('ERR_POLICY_BAD_RULE', `rule ${JSON.stringify(rule.slice(0, 200))}: ${why}`);
}

function parsePorts(text: string, rule: string): PortRange[] {
  if (text === '*') return [[1, 65535]];
  return text.split(',').map((part) => {
    const m = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(part);
    if (!m) throw bad(rule, `bad port list ${JSON.stringify(text)}: use 22, 22,443, 8000-8100 or *`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65535 || lo > hi) throw bad(rule, `port range ${part} is outside 1-65535 or reversed`);
    return [lo, hi] as const;
  });
}

function parseRange(host: string, rule: string): Range | undefined {
  const slash = host.indexOf('/');
  const addrText = slash < 0 ? host : host.slice(0, slash);
  const isV6 = net.isIPv6(addrText);
  const v4 = isV6 ? undefined : net.isIPv4(addrText) ? addrText : /^[0-9.x]+$/i.test(addrText) ? parseLegacyIPv4(addrText) : undefined;
  if (!isV6 && v4 === undefined) {
    if (slash >= 0) throw bad(rule, `${JSON.stringify(addrText)} is not an IP address, so it cannot take a prefix length`);
    return undefined;
  }
  const bytes = addressBytes(isV6 ? addrText : v4!)!;
  const maxPrefix = bytes.length * 8;
  let prefix = maxPrefix;
  if (slash >= 0) {
    const p = host.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > (isV6 && bytes.length === 16 ? 128 : isV6 ? 128 : 32)) {
      throw bad(rule, `prefix length /${p} is out of range (IPv4 0-32, IPv6 0-128)`);
    }
    prefix = Number(p);
    // A mapped IPv6 range (::ffff:10.0.0.0/104) folds to its IPv4 range.
    if (isV6 && bytes.length === 4) prefix = Math.max(0, prefix - 96);
  }
  return { bytes, prefix };
}

/** A peer's compiled rules. */
export class AccessRules {
  readonly #addressRules: readonly AddressRule[];
  readonly #nameRules: readonly NameRule[];
  readonly texts: readonly string[];

  constructor(addressRules: readonly AddressRule[], nameRules: readonly NameRule[], texts: readonly string[]) {
    this.#addressRules = addressRules;
    this.#nameRules = nameRules;
    this.texts = texts;
  }

  get empty(): boolean {
    return this.#addressRules.length === 0 && this.#nameRules.length === 0;
  }

  /** True when a name rule grants `name` on `port` (before resolution). */
  namePermitted(name: string, port: number): boolean {
    return this.#nameRules.some((r) => r.name === name && portIn(port, r.ports));
  }

  /** True when some rule could grant `port` at all (a cheap early refusal before resolving). */
  portMentioned(port: number): boolean {
    return this.#addressRules.some((r) => portIn(port, r.ports)) || this.#nameRules.some((r) => portIn(port, r.ports));
  }

  /**
   * The decision on a resolved target: `host` as the peer asked (a name or an address),
   * `address` as resolved (canonical), `port`. `localAddresses` are the daemon's own.
   */
  allowsResolved(host: string, address: string, port: number, localAddresses: readonly string[] = []): boolean {
    const bytes = addressBytes(address);
    if (bytes === undefined) return false;
    const local = localAddresses.some((l) => {
      const b = addressBytes(l);
      return b !== undefined && b.length === bytes.length && b.every((x, i) => x === bytes[i]);
    });
    const special = local || SPECIAL_RANGES.some((r) => inRange(bytes, r));
    for (const rule of this.#addressRules) {
      if (!portIn(port, rule.ports) || !inRange(bytes, rule.range)) continue;
      if (!special) return true;
      if (local ? rule.range.prefix === bytes.length * 8 : rule.explicitSpecial) return true;
    }
    if (special) return false;
    return !net.isIP(host) && this.namePermitted(host, port);
  }
}

function portIn(port: number, ranges: readonly PortRange[]): boolean {
  return ranges.some(([lo, hi]) => port >= lo && port <= hi);
}

/** Compiles rule texts; throws ForwardError 'ERR_POLICY_BAD_RULE' naming the first bad rule. */
export function compileRules(rules: readonly string[]): AccessRules {
  const addressRules: AddressRule[] = [];
  const nameRules: NameRule[] = [];
  for (const text of rules) {
    if (typeof text !== 'string' || text.trim() === '') throw bad(String(text), 'empty rule');
    const rule = text.trim();
    let hostPart: string;
    let portPart: string;
    if (rule.startsWith('[')) {
      const close = rule.indexOf(']');
      if (close < 0 || rule[close + 1] !== ':') throw bad(rule, 'expected [IPv6 or IPv6/prefix]:PORTS');
      hostPart = rule.slice(1, close);
      portPart = rule.slice(close + 2);
      if (!net.isIPv6(hostPart.split('/')[0]!)) throw bad(rule, `${JSON.stringify(hostPart)} is not an IPv6 address`);
    } else {
      const colon = rule.lastIndexOf(':');
      if (colon <= 0) throw bad(rule, 'expected HOST:PORTS, e.g. 10.0.0.0/8:22 or db.corp.example:5432');
      hostPart = rule.slice(0, colon);
      portPart = rule.slice(colon + 1);
      if (hostPart.includes(':')) throw bad(rule, 'IPv6 addresses go in brackets: [fd00::/8]:22');
    }
    if (hostPart.includes('*')) throw bad(rule, 'wildcards are not supported: list names exactly or use a CIDR range');
    const ports = parsePorts(portPart, rule);
    const range = parseRange(hostPart, rule);
    if (range) {
      addressRules.push({ text: rule, range, ports, explicitSpecial: SPECIAL_RANGES.some((s) => rangeInside(range, s)) });
      continue;
    }
    let name: string;
    try {
      const normal = normalizeHost(hostPart);
      if (normal.family !== 0) throw new Error('address');
      name = normal.host;
    } catch {
      throw bad(rule, `${JSON.stringify(hostPart.slice(0, 100))} is not a host name, an address or a CIDR range`);
    }
    nameRules.push({ text: rule, name, ports });
  }
  return new AccessRules(addressRules, nameRules, rules.map((r) => r.trim()));
}
