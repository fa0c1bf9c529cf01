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
 * special range, such as `127.0.0.1:8080` or `127.0.0.0/8:*` (for the daemon's own addresses:
 * a rule naming that one address). A broad `0.0.0.0/0:*` does not grant them, and neither does a
 * name rule whose name resolves into them (DNS rebinding).
 *
 * IPv6 rules for forms that embed an IPv4 address (IPv4-mapped `::ffff:0:0/96`, NAT64
 * `64:ff9b::/96`, 6to4 `2002::/16`) are folded to the IPv4 range they reach, as targets are;
 * a prefix too short to say which IPv4 range it means is refused as ambiguous.
 *
 * Conditions may follow after a space; all of a rule's conditions must hold for it to grant
 * anything (docs/PROTOCOL.md section 13):
 *   verified<D   the person at the keyboard verified less than D ago (`15m`, `90s`, `2h`)
 *   group:NAME   the verified person is in group NAME (from the identity provider)
 * e.g. `db.corp.example:5432 verified<15m group:dba`. A rule with conditions never grants to a
 * session without a verified person.
 *
 * Matching uses net.BlockList, one per rule (SECURITY.md #4).
 */
import net from 'node:net';
import { ForwardError } from '../errors.js';
import { splitHostPort } from '../lib/host-port.js';
import { canonicalIPv6, embeddedIPv4, normalizeHost, parseLegacyIPv4 } from './address.js';

type PortRange = readonly [number, number];
type Family = 'ipv4' | 'ipv6';

/** An address range: network address (canonical text), prefix length, family. */
interface Range {
  readonly network: string;
  readonly prefix: number;
  readonly family: Family;
}

/** Who verified on a session, as rule conditions see them. */
export interface RulePerson {
  /** Epoch milliseconds. */
  readonly verifiedAt: number;
  readonly groups: readonly string[];
}

/** A rule's conditions: all must hold. */
interface Conditions {
  /** `verified<D`: the verification is younger than this. */
  readonly maxAgeMs?: number;
  /** `group:NAME`, each. */
  readonly groups: readonly string[];
}

interface AddressRule {
  readonly text: string;
  readonly conditions?: Conditions;
  readonly range: Range;
  readonly list: net.BlockList;
  readonly ports: readonly PortRange[];
  /** The rule's whole range lies inside a special range: it grants those addresses explicitly. */
  readonly explicitSpecial: boolean;
}

interface NameRule {
  readonly text: string;
  readonly conditions?: Conditions;
  readonly name: string;
  readonly ports: readonly PortRange[];
}

/** Ranges denied unless an address rule lists them exactly (SECURITY.md, access control). */
export const SPECIAL_RANGES: readonly string[] = [
  '0.0.0.0/8',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '224.0.0.0/4',
  '255.255.255.255/32',
  '::/128',
  '::1/128',
  'fe80::/10',
  'ff00::/8',
];

const MAX_RULE_CHARS = 300;

interface SpecialRange {
  readonly range: Range;
  readonly list: net.BlockList;
}

function blockListOf(range: Range): net.BlockList {
  const list = new net.BlockList();
  list.addSubnet(range.network, range.prefix, range.family);
  return list;
}

const SPECIALS: readonly SpecialRange[] = SPECIAL_RANGES.map((cidr) => {
  const [network, prefix] = cidr.split('/') as [string, string];
  const range: Range = { network, prefix: Number(prefix), family: net.isIPv4(network) ? 'ipv4' : 'ipv6' };
  return { range, list: blockListOf(range) };
});

/** Every special range in one list: "is it special?" is one check, not one per range. */
const ANY_SPECIAL = new net.BlockList();
for (const s of SPECIALS) ANY_SPECIAL.addSubnet(s.range.network, s.range.prefix, s.range.family);

/**
 * A canonical address as a SocketAddress, parsed once per decision: BlockList.check given a string
 * parses it again for every list it is asked of.
 */
function socketAddressOf(a: { address: string; family: Family }): net.SocketAddress {
  return new net.SocketAddress({ address: a.address, family: a.family });
}

/**
 * The canonical form and family of an address already normalised by parseTarget/normalizeHost
 * (embedded IPv4 forms folded to IPv4); undefined for anything else.
 */
export function canonicalAddress(address: string): { address: string; family: Family } | undefined {
  if (net.isIPv4(address)) return { address, family: 'ipv4' };
  if (!net.isIPv6(address)) return undefined;
  const v4 = embeddedIPv4(address);
  return v4 ? { address: v4, family: 'ipv4' } : { address: canonicalIPv6(address), family: 'ipv6' };
}

/** True when `address` lies in a special range or is one of `localAddresses`. */
export function isSpecialAddress(address: string, localAddresses: readonly string[] = []): boolean {
  const a = canonicalAddress(address);
  if (!a) return true;
  return ANY_SPECIAL.check(socketAddressOf(a)) || localAddresses.some((l) => canonicalAddress(l)?.address === a.address);
}

/** `inner` lies entirely inside `outer`. */
function rangeInside(inner: Range, outer: SpecialRange): boolean {
  return inner.family === outer.range.family && inner.prefix >= outer.range.prefix && outer.list.check(inner.network, inner.family);
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

/** Folds an IPv6 range that embeds IPv4 addresses into that IPv4 range. */
function foldEmbedded(address: string, prefix: number, rule: string): Range {
  const v4 = embeddedIPv4(address)!;
  // 6to4 carries the IPv4 address in bits 16-48; the other forms in the last 32 bits.
  const offset = /^2002:/i.test(canonicalIPv6(address)) ? 16 : 96;
  if (prefix < offset) throw bad(rule, `an IPv6 range shorter than /${offset} over IPv4-embedding addresses is ambiguous: write the IPv4 range`);
  return { network: v4, prefix: Math.min(32, prefix - offset), family: 'ipv4' };
}

function parseRange(host: string, rule: string): Range | undefined {
  const slash = host.indexOf('/');
  const addrText = slash < 0 ? host : host.slice(0, slash);
  const isV6 = net.isIPv6(addrText);
  const v4 = isV6 ? undefined : /^[0-9a-fx.]+$/i.test(addrText) ? parseLegacyIPv4(addrText) : undefined;
  if (!isV6 && v4 === undefined) {
    if (slash >= 0) throw bad(rule, `${JSON.stringify(addrText.slice(0, 100))} is not an IP address, so it cannot take a prefix length`);
    return undefined;
  }
  const max = isV6 ? 128 : 32;
  let prefix = max;
  if (slash >= 0) {
    const p = host.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > max) throw bad(rule, `prefix length /${p.slice(0, 10)} is out of range (IPv4 0-32, IPv6 0-128)`);
    prefix = Number(p);
  }
  if (!isV6) return { network: v4!, prefix, family: 'ipv4' };
  if (embeddedIPv4(addrText) !== undefined) return foldEmbedded(addrText, prefix, rule);
  return { network: canonicalIPv6(addrText), prefix, family: 'ipv6' };
}

/** A peer's compiled rules. Immutable. */
export class AccessRules {
  readonly #addressRules: readonly AddressRule[];
  readonly #nameRules: readonly NameRule[];
  /** The rule texts as written (trimmed), in order. */
  readonly texts: readonly string[];

  /** Use compileRules(). */
  constructor(addressRules: readonly AddressRule[], nameRules: readonly NameRule[], texts: readonly string[]) {
    this.#addressRules = addressRules;
    this.#nameRules = nameRules;
    this.texts = Object.freeze([...texts]);
  }

  /** True when some rule carries conditions (`verified<D`, `group:NAME`). */
  get conditional(): boolean {
    return this.#addressRules.some((r) => r.conditions !== undefined) || this.#nameRules.some((r) => r.conditions !== undefined);
  }

  /**
   * The rules that grant for `person` at `now`: those without conditions, and those whose every
   * condition holds. `this` when no rule has conditions.
   */
  forPerson(person: RulePerson | undefined, now: number): AccessRules {
    if (!this.conditional) return this;
    const holds = (r: { conditions?: Conditions }): boolean => conditionsHold(r.conditions, person, now);
    return new AccessRules(this.#addressRules.filter(holds), this.#nameRules.filter(holds), this.texts);
  }

  /** No rule at all: every target is denied. */
  get empty(): boolean {
    return this.#addressRules.length === 0 && this.#nameRules.length === 0;
  }

  /** True when a name rule grants `name` (normalised) on `port`, before resolution. */
  namePermitted(name: string, port: number): boolean {
    return this.#nameRules.some((r) => r.name === name && portIn(port, r.ports));
  }

  /** True when some rule could grant `port` at all (a cheap early refusal before resolving). */
  portMentioned(port: number): boolean {
    return this.#addressRules.some((r) => portIn(port, r.ports)) || this.#nameRules.some((r) => portIn(port, r.ports));
  }

  /**
   * True when resolving `host` could lead to a grant on `port`: a name rule for it, or an address
   * rule on that port. False means: refuse without a DNS lookup.
   */
  mayResolve(host: string, port: number): boolean {
    return this.namePermitted(host, port) || this.#addressRules.some((r) => portIn(port, r.ports));
  }

  /**
   * The decision on a resolved target: `host` as the peer asked (a normalised name or address),
   * `address` as resolved, `port`. `localAddresses` are the daemon's own.
   */
  allowsResolved(host: string, address: string, port: number, localAddresses: readonly string[] = []): boolean {
    const a = canonicalAddress(address);
    if (a === undefined) return false;
    const local = localAddresses.some((l) => canonicalAddress(l)?.address === a.address);
    const sa = socketAddressOf(a);
    const special = local || ANY_SPECIAL.check(sa);
    for (const rule of this.#addressRules) {
      if (!portIn(port, rule.ports) || rule.range.family !== a.family || !rule.list.check(sa)) continue;
      if (!special) return true;
      // A daemon's own address is granted only by a rule naming exactly that address.
      if (local ? rule.range.prefix === (a.family === 'ipv4' ? 32 : 128) : rule.explicitSpecial) return true;
    }
    if (special) return false;
    return net.isIP(host) === 0 && this.namePermitted(host, port);
  }
}

function conditionsHold(c: Conditions | undefined, person: RulePerson | undefined, now: number): boolean {
  if (c === undefined) return true;
  if (person === undefined) return false;
  if (c.maxAgeMs !== undefined && !(now - person.verifiedAt < c.maxAgeMs)) return false;
  return c.groups.every((g) => person.groups.includes(g));
}

const DURATION = /^([1-9][0-9]{0,5})(s|m|h)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000 } as const;
const GROUP = /^[A-Za-z0-9._@+-]{1,128}$/;

/** Parses the words after `HOST:PORTS`; undefined when there are none. */
function parseConditions(words: readonly string[], rule: string): Conditions | undefined {
  if (words.length === 0) return undefined;
  let maxAgeMs: number | undefined;
  const groups: string[] = [];
  for (const word of words) {
    if (word.startsWith('verified<')) {
      const m = DURATION.exec(word.slice('verified<'.length));
      if (m === null) throw bad(rule, `${JSON.stringify(word.slice(0, 60))}: expected verified<N with a unit s, m or h (verified<15m)`);
      if (maxAgeMs !== undefined) throw bad(rule, 'verified< is given twice');
      maxAgeMs = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
    } else if (word.startsWith('group:')) {
      const name = word.slice('group:'.length);
      if (!GROUP.test(name)) throw bad(rule, `${JSON.stringify(word.slice(0, 60))}: expected group:NAME (letters, digits, . _ @ + -)`);
      groups.push(name);
    } else {
      throw bad(rule, `${JSON.stringify(word.slice(0, 60))}: unknown condition (expected verified<D or group:NAME)`);
    }
  }
  return { ...(maxAgeMs !== undefined ? { maxAgeMs } : {}), groups };
}

function portIn(port: number, ranges: readonly PortRange[]): boolean {
  return ranges.some(([lo, hi]) => port >= lo && port <= hi);
}

function splitRule(rule: string): { hostPart: string; portPart: string } {
  const split = splitHostPort(rule);
  if (!split.ok) {
    if (split.problem === 'unclosed-bracket') throw bad(rule, 'expected [IPv6 or IPv6/prefix]:PORTS');
    if (split.problem === 'no-port') throw bad(rule, 'expected HOST:PORTS, e.g. 10.0.0.0/8:22 or db.corp.example:5432');
    throw bad(rule, 'IPv6 addresses go in brackets: [fd00::/8]:22');
  }
  if (split.bracketed && !net.isIPv6(split.host.split('/')[0]!)) throw bad(rule, `${JSON.stringify(split.host.slice(0, 100))} is not an IPv6 address`);
  return { hostPart: split.host, portPart: split.port };
}

/** Compiles rule texts; throws ForwardError 'ERR_POLICY_BAD_RULE' naming the first bad rule. */
export function compileRules(rules: readonly string[]): AccessRules {
  const addressRules: AddressRule[] = [];
  const nameRules: NameRule[] = [];
  const texts: string[] = [];
  for (const raw of rules) {
    if (typeof raw !== 'string' || raw.trim() === '') throw bad(String(raw), 'empty rule');
    const rule = raw.trim();
    if (rule.length > MAX_RULE_CHARS) throw bad(rule, `longer than ${MAX_RULE_CHARS} characters`);
    texts.push(rule);
    const [target, ...words] = rule.split(/\s+/) as [string, ...string[]];
    const conditions = parseConditions(words, rule);
    const { hostPart, portPart } = splitRule(target);
    if (hostPart.includes('*')) throw bad(rule, 'wildcards are not supported: list names exactly or use a CIDR range');
    const ports = parsePorts(portPart, rule);
    const range = parseRange(hostPart, rule);
    if (range) {
      const explicitSpecial = SPECIALS.some((s) => rangeInside(range, s));
      addressRules.push({ text: rule, range, list: blockListOf(range), ports, explicitSpecial, ...(conditions ? { conditions } : {}) });
      continue;
    }
    let name: string;
    try {
      const normal = normalizeHost(hostPart);
      if (normal.family !== 0) throw new Error('an address');
      name = normal.host;
    } catch {
      throw bad(rule, `${JSON.stringify(hostPart.slice(0, 100))} is not a host name, an address or a CIDR range`);
    }
    nameRules.push({ text: rule, name, ports, ...(conditions ? { conditions } : {}) });
  }
  return new AccessRules(addressRules, nameRules, texts);
}
