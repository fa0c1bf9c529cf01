import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  decodeProcEndpoint,
  endpointKey,
  findOwnerInTables,
  parseProcNetTcp,
  PeerOwnerLookup,
  procEndpointForms,
  scanProcTable,
  type ScanTable,
} from '../../../src/forward/peer-owner.js';

const run = promisify(execFile);
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

// Rows as a little-endian Linux prints them (the test machine is x86-64).
const TCP = [
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
  '   0: 0100007F:0438 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0',
  '   1: 0100007F:D431 0100007F:0438 01 00000000:00000000 00:00000000 00000000 65534        0 4343 1 0000000000000000 20 4 30 10 -1',
  '   2: 0100007F:D432 0100007F:0438 05 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000',
  '   garbage line',
].join('\n');
const TCP6 = [
  '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
  '   0: 00000000000000000000000001000000:D433 00000000000000000000000001000000:0438 01 00000000:00000000 00:00000000 00000000  1000        0 4444 1 0000000000000000 20 4 30 10 -1',
  '   1: 0000000000000000FFFF00000100007F:D434 0000000000000000FFFF00000100007F:0438 01 00000000:00000000 00:00000000 00000000  1001        0 4545 1 0000000000000000 20 4 30 10 -1',
].join('\n');

describe('parseProcNetTcp and findOwnerInTables', () => {
  it('decodes IPv4, IPv6 and IPv4-mapped endpoints in host byte order', () => {
    expect(decodeProcEndpoint('0100007F:0438')).toBe('127.0.0.1:1080');
    expect(decodeProcEndpoint('00000000000000000000000001000000:0016')).toBe('[0:0:0:0:0:0:0:1]:22');
    expect(decodeProcEndpoint('0000000000000000FFFF00000100007F:0016')).toBe('127.0.0.1:22');
    expect(endpointKey('::1', 22)).toBe('[0:0:0:0:0:0:0:1]:22');
    expect(endpointKey('::ffff:127.0.0.1', 22)).toBe('127.0.0.1:22');
    expect(decodeProcEndpoint('zz:1')).toBeUndefined();
  });

  it('finds the uid of the connecting socket, by its address and ours, and only for live sockets', () => {
    expect([...parseProcNetTcp(TCP), ...parseProcNetTcp(TCP6)]).toHaveLength(5);
    const owner = (e: Parameters<typeof findOwnerInTables>[1]) => findOwnerInTables([TCP, TCP6], e);
    const ends = (port: number, ip = '127.0.0.1', local = '127.0.0.1') => ({ remoteAddress: ip, remotePort: port, localAddress: local, localPort: 1080 });
    expect(owner(ends(0xd431))).toBe(65534);
    // A time-wait entry (inode 0, printed as uid 0) is nobody: never taken for root.
    expect(owner(ends(0xd432))).toBeUndefined();
    expect(owner(ends(0xd433, '::1', '::1'))).toBe(1000);
    // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
    expect(owner(ends(0xd434, '::ffff:127.0.0.1', '::ffff:127.0.0.1'))).toBe(1001);
    // ... and an IPv4-only client's socket is in tcp, in its IPv4 spelling.
    expect(owner(ends(0xd431, '::ffff:127.0.0.1', '::ffff:127.0.0.1'))).toBe(65534);
    expect(owner(ends(0xd499))).toBeUndefined();
    // The other direction of the same pair (our accepted socket's own row) is not the peer.
    expect(owner({ remoteAddress: '127.0.0.1', remotePort: 1080, localAddress: '127.0.0.1', localPort: 0xd431 })).toBeUndefined();
  });
});

describe('procEndpointForms', () => {
  it('spells an endpoint as the kernel prints it, for every form decodeProcEndpoint reads', () => {
    expect(procEndpointForms('127.0.0.1', 1080)).toEqual(['0100007F:0438', '0000000000000000FFFF00000100007F:0438']);
    expect(procEndpointForms('::ffff:127.0.0.1', 22)).toEqual(['0100007F:0016', '0000000000000000FFFF00000100007F:0016']);
    expect(procEndpointForms('::1', 22)).toEqual([undefined, '00000000000000000000000001000000:0016']);
    expect(procEndpointForms('fe80::1%lo', 22)).toEqual([undefined, '000080FE000000000000000001000000:0016']);
    for (const [ip, port] of [
      ['10.1.2.3', 65535],
      ['2001:db8::42', 443],
      ['::ffff:192.0.2.7', 8080],
    ] as const) {
      for (const form of procEndpointForms(ip, port)) if (form !== undefined) expect(decodeProcEndpoint(form)).toBe(endpointKey(ip, port));
    }
  });
});

describe('PeerOwnerLookup on this machine', () => {
  async function acceptOne(host: string, connectAs?: number): Promise<net.Socket> {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, host, r));
    cleanups.push(() => server.close());
    const port = (server.address() as net.AddressInfo).port;
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    if (connectAs === undefined) {
      const c = net.connect(port, host);
      c.on('error', () => {});
      cleanups.push(() => c.destroy());
    } else {
      // Holds its connection open until the server closes it.
      const script = `const s=require('net').connect(${port},${JSON.stringify(host)});s.on('error',()=>{});s.on('close',()=>process.exit(0));setTimeout(()=>process.exit(0),10000)`;
      void run('setpriv', [`--reuid=${connectAs}`, `--regid=${connectAs}`, '--clear-groups', process.execPath, '-e', script]).catch(() => {});
    }
    const socket = await accepted;
    cleanups.push(() => socket.destroy());
    return socket;
  }

  // /proc alone, and the default (the exact sock_diag lookup first, where the addon is built).
  const MODES = [
    ['/proc/self/net/tcp{,6}', () => new PeerOwnerLookup(undefined, scanProcTable, null)],
    ['the default lookup', () => new PeerOwnerLookup()],
  ] as const;

  it.each(MODES)('%s: names this process as the owner of its own connection, over IPv4 and IPv6', async (_, make) => {
    const lookup = make();
    expect(await lookup.ownerOf(await acceptOne('127.0.0.1'))).toBe(process.getuid!());
    expect(await lookup.ownerOf(await acceptOne('::1'))).toBe(process.getuid!());
  });

  it.each(MODES)('%s: names another uid as the owner of its connection (run as root: setpriv)', async (_, make) => {
    expect(process.getuid?.(), 'this test runs as root (setpriv --reuid=65534)').toBe(0);
    const lookup = make();
    expect(await lookup.ownerOf(await acceptOne('127.0.0.1', 65534))).toBe(65534);
  });

  it('shares one read of the tables among lookups that wait together', async () => {
    let reads = 0;
    // The first read is held open until all twenty lookups wait (a gate, not a pause).
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const lookup = new PeerOwnerLookup(async () => {
      reads++;
      await gate;
      return [TCP, TCP6];
    });
    const ends = { remoteAddress: '127.0.0.1', remotePort: 0xd431, localAddress: '127.0.0.1', localPort: 1080 };
    const lookups = Array.from({ length: 20 }, () => lookup.ownerOf(ends));
    release();
    expect(await Promise.all(lookups)).toEqual(Array(20).fill(65534));
    // One read for the first lookup, one shared by the nineteen that came while it ran.
    expect(reads).toBe(2);
  });
});

describe('PeerOwnerLookup rounds (tables a page at a time)', () => {
  const HEAD = TCP.split('\n')[0]!;
  const row = (port: number, uid: number, inode = 7000 + port) =>
    `   9: 0100007F:${port.toString(16).toUpperCase()} 0100007F:0438 01 00000000:00000000 00:00000000 00000000 ${uid} 0 ${inode} 1 0000000000000000 20 4 30 10 -1`;
  const ends = (port: number) => ({ remoteAddress: '127.0.0.1', remotePort: port, localAddress: '127.0.0.1', localPort: 1080 });

  /** Hands out `pages(round, table)` one page per turn, as scanProcTable does, and logs what was read. */
  function pagedScan(pages: (round: number, index: number) => string[], beforePage?: (round: number, page: number) => Promise<void>) {
    const log: string[] = [];
    let round = 0;
    let lastIndex = Infinity;
    const scan: ScanTable = async (index, take) => {
      if (index <= lastIndex) round++;
      lastIndex = index;
      const list = pages(round, index);
      for (let p = 0; p < list.length; p++) {
        await beforePage?.(round, p);
        log.push(`round ${round} table ${index} page ${p}`);
        if (!take(`${list[p]}\n`)) return;
      }
    };
    return { scan, log };
  }

  it('never judges a connection by a read that began before it was asked, even by the pages read after', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // Round 1 began for port 0xd401 alone. Its second page, read after 0xd402 was asked, shows a
    // row with 0xd402's endpoints as that moment's table has it (uid 65534, a socket of another
    // user); the round that began after the ask shows the connection's own row (uid 1000).
    const { scan, log } = pagedScan(
      (round) => (round === 1 ? [`${HEAD}\n${row(0xd400, 0)}`, `${row(0xd402, 65534)}\n${row(0xd401, 1001)}`] : [`${HEAD}\n${row(0xd402, 1000)}`]),
      async (round, page) => {
        if (round === 1 && page === 1) await gate;
      },
    );
    const lookup = new PeerOwnerLookup(undefined, scan);
    const first = lookup.ownerOf(ends(0xd401));
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['round 1 table 0 page 0']);
    const asked = lookup.ownerOf(ends(0xd402));
    release();
    expect(await first).toBe(1001);
    expect(await asked).toBe(1000);
    expect(log).toEqual(['round 1 table 0 page 0', 'round 1 table 0 page 1', 'round 2 table 0 page 0']);
  });

  it('stops reading at the last match of a round and reads tcp6 only for what tcp did not have', async () => {
    const tcpPages = [`${HEAD}\n${row(0xd411, 1000)}`, row(0xd412, 1001), row(0xd413, 1002)];
    const tcp6Pages = [TCP6];
    const { scan, log } = pagedScan((_, index) => (index === 0 ? tcpPages : tcp6Pages));
    const page = (line: string) => line.replace(/^round \d+ /, '');
    const lookup = new PeerOwnerLookup(undefined, scan);
    // The first lookup's round stops at page 0; the second's (it waited) at page 1. Page 2 and
    // tcp6 are never read.
    expect(await Promise.all([lookup.ownerOf(ends(0xd411)), lookup.ownerOf(ends(0xd412))])).toEqual([1000, 1001]);
    expect(log.splice(0).map(page)).toEqual(['table 0 page 0', 'table 0 page 0', 'table 0 page 1']);
    // An IPv6 peer is never in tcp.
    expect(await lookup.ownerOf({ remoteAddress: '::1', remotePort: 0xd433, localAddress: '::1', localPort: 1080 })).toBe(1000);
    expect(log.splice(0).map(page)).toEqual(['table 1 page 0']);
    // An IPv4 peer from a dual-stack socket is in tcp6 only: all of tcp, then tcp6.
    expect(await lookup.ownerOf({ remoteAddress: '::ffff:127.0.0.1', remotePort: 0xd434, localAddress: '::ffff:127.0.0.1', localPort: 1080 })).toBe(1001);
    expect(log.splice(0).map(page)).toEqual(['table 0 page 0', 'table 0 page 1', 'table 0 page 2', 'table 1 page 0']);
    // Nobody found: both tables to the end, and the answer is "unknown", never a guess.
    expect(await lookup.ownerOf(ends(0xd499))).toBeUndefined();
    expect(log.splice(0).map(page)).toEqual(['table 0 page 0', 'table 0 page 1', 'table 0 page 2', 'table 1 page 0']);
  });

  it('passes over a time-wait row of the same endpoints to the live one on a later page', async () => {
    const { scan } = pagedScan(() => [`${HEAD}\n${row(0xd421, 0, 0)}`, row(0xd421, 1000)]);
    expect(await new PeerOwnerLookup(undefined, scan).ownerOf(ends(0xd421))).toBe(1000);
  });

  it('scanProcTable hands out the real table in whole lines and stops when told', async () => {
    const chunks: string[] = [];
    await scanProcTable(0, (text) => (chunks.push(text), true));
    expect(chunks[0]).toMatch(/^\s*sl\s+local_address/);
    for (const c of chunks) expect(c.endsWith('\n')).toBe(true);
    let pages = 0;
    await scanProcTable(0, () => (pages++, false));
    expect(pages).toBe(1);
  });
});
