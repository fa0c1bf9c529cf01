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
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import os from 'node:os';
import { formatHostPort } from '../lib/host-port.js';
import { NativeOwnerLookup } from './native-owner.js';

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
  return formatHostPort(host.includes(':') ? expandIPv6(host) : host, port);
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
  return ordered
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
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
 * The keys ("LOCAL REMOTE" as the kernel spells them) of the connecting socket's row of `ends` in
 * tcp and in tcp6: the row whose local field is the peer's endpoint and whose remote field is ours.
 * tcp holds IPv4 sockets, tcp6 IPv6 ones, dual-stack sockets with v4-mapped endpoints included,
 * so an IPv4 peer may be in either and an IPv6 peer only in tcp6.
 */
export function connectingRowKeys(ends: AcceptedEnds): [tcp: string | undefined, tcp6: string | undefined] {
  if (ends.remoteAddress === undefined || ends.remotePort === undefined || ends.localAddress === undefined || ends.localPort === undefined)
    return [undefined, undefined];
  const peer = procEndpointForms(ends.remoteAddress, ends.remotePort);
  const us = procEndpointForms(ends.localAddress, ends.localPort);
  const key = (form: 0 | 1): string | undefined => (peer[form] === undefined || us[form] === undefined ? undefined : `${peer[form]} ${us[form]}`);
  return [key(0), key(1)];
}

/**
 * Calls `found` for each line of `text` (whole lines of one table) that is the live row of a key
 * in `wanted`, and deletes that key. Only the two address fields of a line are looked at unless
 * they match: a table holds a line per socket of the namespace, time-wait entries included
 * (thousands after a burst of short connections). A matching line with inode 0 (time-wait) is
 * not the live socket; the search goes on.
 */
function matchRows(text: string, wanted: Map<string, unknown>, found: (key: string, uid: number) => void): void {
  for (let at = 0; at < text.length && wanted.size > 0;) {
    let end = text.indexOf('\n', at);
    if (end < 0) end = text.length;
    // "   12: LOCAL REMOTE st ...": the two fields after the slot number.
    const colon = text.indexOf(': ', at);
    const l1 = colon < 0 || colon > end ? -1 : text.indexOf(' ', colon + 2);
    const r1 = l1 < 0 || l1 > end ? -1 : text.indexOf(' ', l1 + 1);
    if (r1 > 0 && r1 < end) {
      const key = text.slice(colon + 2, r1);
      if (wanted.has(key)) {
        const [row] = parseProcNetTcp(`header\n${text.slice(at, end)}`);
        if (row !== undefined && row.inode !== 0) {
          found(key, row.uid);
          wanted.delete(key);
        }
      }
    }
    at = end + 1;
  }
}

/** The uid owning the connecting socket of `ends` in whole tables ([tcp, tcp6] text). */
export function findOwnerInTables(tables: readonly string[], ends: AcceptedEnds): number | undefined {
  const keys = connectingRowKeys(ends);
  let uid: number | undefined;
  for (let index = 0; index < keys.length && uid === undefined; index++) {
    const key = keys[index];
    if (key !== undefined) matchRows(tables[index] ?? '', new Map([[key, true]]), (_, u) => (uid = u));
  }
  return uid;
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
 * Hands table `index` of PROC_NET_TCP to `scan` in whole lines, a chunk at a time, until `scan`
 * returns false (nothing more wanted from this table) or the table ends.
 */
export type ScanTable = (index: number, scan: (lines: string) => boolean) => Promise<void>;

/** The kernel hands out a seq_file one page per read(2) (~27 rows); a larger buffer costs nothing. */
const TABLE_CHUNK_BYTES = 16 * 1024;

/**
 * Reads /proc/self/net/tcp{,6} a page per event-loop turn and stops as soon as `scan` has what it
 * wants. The cost of a read is the kernel's: it walks the whole established hash (a quarter of a
 * million buckets here, ~2 ms, and again for the read(2) that returns end of file) and prints
 * every row before the one wanted (~1.5 us a row; thousands of time-wait rows after a burst), so
 * stopping at the match, and not reading a table nobody can be in, is what saves. A page per turn,
 * read synchronously (~40 us): through the thread pool every page was a round trip, and reading on
 * without yielding kept the accepts that arrive meanwhile from joining the next round (a round per
 * connection). Against reading both tables whole per round: the listener's CPU per open about a
 * quarter, the tunnel bench's relay CPU per open 4.7 -> 1.9 ms (bench/profile-notes.md, round 5).
 */
export const scanProcTable: ScanTable = (index, scan) =>
  new Promise((resolve, reject) => {
    const file = PROC_NET_TCP[index]!;
    let fd: number;
    try {
      fd = fsSync.openSync(file, 'r');
    } catch (err) {
      if (index === 1 && (err as NodeJS.ErrnoException).code === 'ENOENT') resolve();
      else reject(err as Error);
      return;
    }
    const buf = Buffer.allocUnsafe(TABLE_CHUNK_BYTES);
    let carry = '';
    const finish = (err?: Error): void => {
      fsSync.close(fd, () => {});
      if (err === undefined) resolve();
      else reject(err);
    };
    const page = (): void => {
      try {
        const n = fsSync.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) {
          if (carry !== '') scan(carry);
          finish();
          return;
        }
        const text = carry + buf.toString('latin1', 0, n);
        const cut = text.lastIndexOf('\n') + 1;
        carry = text.slice(cut);
        if (cut > 0 && !scan(text.slice(0, cut))) finish();
        else setImmediate(page);
      } catch (err) {
        finish(err as Error);
      }
    };
    page();
  });

/** A ScanTable over whole tables from `read`, read once per lookup round. */
function scanOnceRead(read: ReadTables): () => ScanTable {
  return () => {
    let tables: Promise<string[]> | undefined;
    return async (index, scan) => {
      tables ??= read();
      scan((await tables)[index] ?? '');
    };
  };
}

interface Waiter {
  readonly ends: AcceptedEnds;
  resolve(uid: number | undefined): void;
  reject(err: Error): void;
}

/**
 * Looks up connection owners, sharing one read of the tables among the lookups that wait for it:
 * a burst of connections costs a few reads, not one each. A lookup only uses a read that began
 * after it was asked, so the connection is always in the table read: the lookups asked while a
 * read is under way wait for the next one. A read stops once every lookup of its round is
 * answered; tcp6 is read only for the ones not found in tcp (an IPv6 peer is never in tcp).
 */
export class PeerOwnerLookup {
  readonly #open: () => ScanTable;
  readonly #native: NativeOwnerLookup | null;
  #waiting: Waiter[] = [];
  #reading = false;

  /**
   * `read` (tests): whole tables, read once per round; else `scan`, the tables a chunk at a time.
   * `native`: the exact kernel lookup tried first (native-owner.ts); null: /proc only (the default
   * when tables are given).
   */
  constructor(read?: ReadTables, scan: ScanTable = scanProcTable, native: NativeOwnerLookup | null = read === undefined ? new NativeOwnerLookup() : null) {
    this.#open = read === undefined ? () => scan : scanOnceRead(read);
    this.#native = native;
  }

  /** Why the exact kernel lookup is not in use (undefined: it is). */
  get nativeUnavailable(): string | undefined {
    return this.#native === null ? 'not asked for' : this.#native.unavailable;
  }

  /** The uid owning the peer socket; undefined when it is not (or no longer) in the tables. */
  ownerOf(ends: AcceptedEnds): Promise<number | undefined> {
    const exact = this.#native?.ownerOf(ends);
    if (exact?.known === true) return Promise.resolve(exact.uid);
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
      await this.#round(batch);
    } catch (err) {
      for (const w of batch) w.reject(err as Error);
    } finally {
      this.#reading = false;
    }
    void this.#next();
  }

  async #round(batch: readonly Waiter[]): Promise<void> {
    const scan = this.#open();
    const keys = new Map(batch.map((w) => [w, connectingRowKeys(w.ends)] as const));
    for (let index = 0; index < PROC_NET_TCP.length; index++) {
      const wanted = new Map<string, Waiter[]>();
      for (const [w, k] of keys) {
        const key = k[index];
        if (key !== undefined) wanted.set(key, [...(wanted.get(key) ?? []), w]);
      }
      if (wanted.size === 0) continue;
      await scan(index, (text) => {
        matchRows(text, wanted, (key, uid) => {
          for (const w of wanted.get(key) ?? []) {
            w.resolve(uid);
            keys.delete(w);
          }
        });
        return wanted.size > 0;
      });
    }
    // Not in either table: gone, or not from this host.
    for (const w of keys.keys()) w.resolve(undefined);
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
