/**
 * Which local user owns the other end of an accepted loopback TCP connection (Linux).
 *
 * TCP carries no credentials, but the kernel's socket tables do: /proc/self/net/tcp and tcp6
 * list every TCP socket of this network namespace with its local and remote address and the uid
 * that created it. The connecting socket is the line whose local address is our peer's address
 * and whose remote address is ours. /proc/self/net (not /proc/net) stays readable under
 * systemd's ProcSubset=pid and ProtectProc=invisible.
 *
 * Lines with inode 0 are not live sockets (time-wait entries, printed with uid 0): a client that
 * closed before the lookup is not attributed to anyone, so it is refused rather than taken for
 * root.
 */
import fs from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import os from 'node:os';

export const PROC_NET_TCP = ['/proc/self/net/tcp', '/proc/self/net/tcp6'] as const;

/** One row of /proc/net/tcp{,6} as far as the owner lookup needs it. */
export interface SocketRow {
  readonly local: string;
  readonly remote: string;
  readonly uid: number;
  readonly inode: number;
}

/** "ip:port" with IPv4-mapped IPv6 unwrapped, IPv6 in brackets and lower case. */
export function endpointKey(ip: string, port: number): string {
  let host = ip.toLowerCase();
  if (host.startsWith('::ffff:') && isIPv4(host.slice(7))) host = host.slice(7);
  return host.includes(':') ? `[${expandIPv6(host)}]:${port}` : `${host}:${port}`;
}

function expandIPv6(ip: string): string {
  const [head = '', tail] = ip.split('::', 2);
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return groups.map((g) => g.replace(/^0+(?=.)/, '')).join(':');
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

/** The 32-bit words are printed with %08X in host byte order: undo that. */
function wordBytes(hex: string): number[] {
  const bytes = [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return LITTLE_ENDIAN ? bytes.reverse() : bytes;
}

/** Decodes "0100007F:1F90" (IPv4) or 32 hex digits + port (IPv6) into an endpointKey. */
export function decodeProcEndpoint(text: string): string | undefined {
  const colon = text.indexOf(':');
  const hex = text.slice(0, colon);
  const port = parseInt(text.slice(colon + 1), 16);
  if (colon < 0 || !/^[0-9A-Fa-f]+$/.test(hex) || !Number.isInteger(port)) return undefined;
  if (hex.length === 8) return endpointKey(wordBytes(hex).join('.'), port);
  if (hex.length !== 32) return undefined;
  const bytes = [0, 8, 16, 24].flatMap((i) => wordBytes(hex.slice(i, i + 8)));
  // An IPv4-mapped address (a dual-stack socket) names the same endpoint as its IPv4 form.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return endpointKey(bytes.slice(12).join('.'), port);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return endpointKey(groups.join(':'), port);
}

/** Parses the text of /proc/net/tcp or tcp6; malformed lines are skipped. */
export function parseProcNetTcp(text: string): SocketRow[] {
  const rows: SocketRow[] = [];
  for (const line of text.split('\n').slice(1)) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const local = decodeProcEndpoint(f[1]!);
    const remote = decodeProcEndpoint(f[2]!);
    const uid = Number(f[7]);
    const inode = Number(f[9]);
    if (local === undefined || remote === undefined || !Number.isSafeInteger(uid) || !Number.isSafeInteger(inode)) continue;
    rows.push({ local, remote, uid, inode });
  }
  return rows;
}

/** The two ends of an accepted connection, as the accepting socket sees them. */
export interface AcceptedEnds {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

/** %08X of a 32-bit word holding `bytes` in memory order, as the kernel prints it (host order). */
function hexWord(bytes: readonly number[]): string {
  const ordered = LITTLE_ENDIAN ? [...bytes].reverse() : bytes;
  return ordered.map((b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();
}

function ipv6Bytes(ip: string): number[] | undefined {
  const groups = expandIPv6(ip.toLowerCase()).split(':');
  if (groups.length !== 8) return undefined;
  const bytes: number[] = [];
  for (const g of groups) {
    const v = parseInt(g, 16);
    if (!/^[0-9a-f]{1,4}$/.test(g)) return undefined;
    bytes.push(v >> 8, v & 0xff);
  }
  return bytes;
}

/**
 * How the tables may print the endpoint `ip:port`: an IPv4 endpoint as 8 hex digits in tcp and as
 * a v4-mapped address in tcp6 (a dual-stack socket), an IPv6 endpoint as 32 hex digits; each form
 * is paired by index with the same form of the other end.
 */
export function procEndpointForms(ip: string, port: number): [v4: string | undefined, v6: string | undefined] {
  let host = ip.split('%', 1)[0]!.toLowerCase();
  if (host.startsWith('::ffff:') && isIPv4(host.slice(7))) host = host.slice(7);
  const p = port.toString(16).toUpperCase().padStart(4, '0');
  if (isIPv4(host)) {
    const v4 = host.split('.').map(Number);
    return [`${hexWord(v4)}:${p}`, `${hexWord([0, 0, 0, 0])}${hexWord([0, 0, 0, 0])}${hexWord([0, 0, 0xff, 0xff])}${hexWord(v4)}:${p}`];
  }
  const b = ipv6Bytes(host);
  if (b === undefined) return [undefined, undefined];
  return [undefined, `${[0, 4, 8, 12].map((i) => hexWord(b.slice(i, i + 4))).join('')}:${p}`];
}

/**
 * The uid owning the connecting socket of `ends`, found in the raw tables without parsing every
 * row: a table holds a line per socket of the namespace, time-wait entries included (thousands
 * after a burst of short connections), and decoding them all for each accept cost ~10x the opens
 * per second of a forward. The line wanted is the one whose local and remote fields are exactly
 * the peer's and our endpoints, in the kernel's spelling; only such lines are parsed.
 */
export function findOwnerInTables(tables: readonly string[], ends: AcceptedEnds): number | undefined {
  if (ends.remoteAddress === undefined || ends.remotePort === undefined || ends.localAddress === undefined || ends.localPort === undefined) return undefined;
  const peer = procEndpointForms(ends.remoteAddress, ends.remotePort);
  const us = procEndpointForms(ends.localAddress, ends.localPort);
  for (const text of tables) {
    for (let form = 0; form < 2; form++) {
      const a = peer[form];
      const b = us[form];
      if (a === undefined || b === undefined) continue;
      const needle = ` ${a} ${b} `;
      for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length)) {
        const start = text.lastIndexOf('\n', at) + 1;
        const end = text.indexOf('\n', at);
        const [row] = parseProcNetTcp(`header\n${text.slice(start, end < 0 ? undefined : end)}`);
        if (row !== undefined && row.inode !== 0) return row.uid;
      }
    }
  }
  return undefined;
}

export type ReadTables = () => Promise<string[]>;

/** Reads tcp and tcp6 (a host without IPv6 has no tcp6: that table is empty). */
export const readProcTables: ReadTables = () =>
  Promise.all(
    PROC_NET_TCP.map((file) =>
      fs.readFile(file, 'latin1').catch((err: NodeJS.ErrnoException) => {
        if (file.endsWith('6') && err.code === 'ENOENT') return '';
        throw err;
      }),
    ),
  );

/**
 * Looks up connection owners, sharing one read of the tables among the lookups that wait for it:
 * a burst of connections costs a few reads, not one each. A lookup only uses a read that began
 * after it was asked, so the connection is always in the table read.
 */
export class PeerOwnerLookup {
  readonly #read: ReadTables;
  #waiting: Array<{ ends: AcceptedEnds; resolve(uid: number | undefined): void; reject(err: Error): void }> = [];
  #reading = false;

  constructor(read: ReadTables = readProcTables) {
    this.#read = read;
  }

  /** The uid owning the peer socket; undefined when it is not (or no longer) in the tables. */
  ownerOf(ends: AcceptedEnds): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ ends, resolve, reject });
      if (!this.#reading) void this.#next();
    });
  }

  async #next(): Promise<void> {
    const batch = this.#waiting;
    this.#waiting = [];
    if (batch.length === 0) return;
    this.#reading = true;
    try {
      const tables = await this.#read();
      for (const w of batch) w.resolve(findOwnerInTables(tables, w.ends));
    } catch (err) {
      for (const w of batch) w.reject(err as Error);
    } finally {
      this.#reading = false;
    }
    void this.#next();
  }
}

/** Checks once that the tables can be read, so a listener fails at start, not per connection. */
export async function checkOwnerTablesReadable(read: ReadTables = readProcTables): Promise<string | undefined> {
  try {
    await read();
    return undefined;
  } catch (err) {
    return `${PROC_NET_TCP[0]} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}
