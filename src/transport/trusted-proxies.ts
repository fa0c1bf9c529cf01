/**
 * Trusted reverse proxies (issue 13 #8): the addresses whose word on the client's address is
 * taken, through a PROXY protocol v2 header or X-Forwarded-For. Anyone else's is ignored: the
 * socket's own address is the client's.
 */
import { BlockList, isIP, isIPv4 } from 'node:net';

/** An IPv4-mapped IPv6 address as its IPv4 form; anything else as it is. */
export function unmapIPv4(ip: string): string {
  const lower = ip.toLowerCase();
  return lower.startsWith('::ffff:') && isIPv4(lower.slice(7)) ? lower.slice(7) : ip;
}

/** Most addresses taken from one X-Forwarded-For header (the rest, further left, are ignored). */
export const MAX_FORWARDED_HOPS = 32;

export class TrustedProxies {
  readonly #list = new BlockList();
  readonly size: number;

  /** `entries`: IPv4 or IPv6 addresses or CIDR ranges ("10.0.0.0/8", "fd00::/8"). Throws a plain Error naming a bad entry. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const slash = entry.indexOf('/');
      const ip = slash < 0 ? entry : entry.slice(0, slash);
      const family = isIP(ip);
      if (family === 0) throw new Error(`expected an IP address or CIDR range, got ${JSON.stringify(entry.slice(0, 64))}`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (slash < 0) {
        this.#list.addAddress(ip, type);
        continue;
      }
      const bitsText = entry.slice(slash + 1);
      const bits = Number(bitsText);
      if (!/^[0-9]{1,3}$/.test(bitsText) || bits > (family === 4 ? 32 : 128)) throw new Error(`bad prefix length in ${JSON.stringify(entry.slice(0, 64))}`);
      this.#list.addSubnet(ip, bits, type);
    }
    this.size = entries.length;
  }

  trusts(ip: string): boolean {
    const bare = unmapIPv4(ip);
    const family = isIP(bare);
    if (family === 0) return false;
    return this.#list.check(bare, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * The client address behind a trusted proxy at `peerIp` from its X-Forwarded-For value: the
   * rightmost hop that is not itself a trusted proxy (every proxy appends the address it saw, so
   * only the hops our proxies added are believed). A malformed hop ends the walk: the last good
   * one is the answer. No header: the proxy itself.
   */
  clientFromForwardedFor(header: string | undefined, peerIp: string): string {
    let client = unmapIPv4(peerIp);
    if (header === undefined) return client;
    const hops = header
      .split(',')
      .slice(-MAX_FORWARDED_HOPS)
      .map((h) => h.trim());
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = unmapIPv4(stripPortAndBrackets(hops[i]!));
      if (isIP(hop) === 0) break;
      client = hop;
      if (!this.trusts(hop)) break;
    }
    return client;
  }
}

/** "1.2.3.4:5678" and "[::1]:5678" as some proxies write them: the address alone. */
function stripPortAndBrackets(hop: string): string {
  if (hop.startsWith('[')) {
    const close = hop.indexOf(']');
    return close < 0 ? hop : hop.slice(1, close);
  }
  const colon = hop.indexOf(':');
  if (colon >= 0 && colon === hop.lastIndexOf(':') && isIPv4(hop.slice(0, colon))) return hop.slice(0, colon);
  return hop;
}
