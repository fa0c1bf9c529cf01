/**
 * The sock_diag addon (src/forward/native/sock-diag.c): built where it can be, it answers what
 * /proc/self/net/tcp{,6} answers for real connections of every family, refuses to guess for a
 * socket it does not find, and turns itself off when netlink is refused, /proc taking over.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NativeOwnerLookup, defaultSockDiagLoader, type SockDiagBinding } from '../../../src/forward/native-owner.js';
import { PeerOwnerLookup, readProcTables, findOwnerInTables, type ScanTable } from '../../../src/forward/peer-owner.js';

/** What scripts/build-native.mjs needs for this addon: Linux, a C compiler and node_api.h. */
const HEADERS = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');
const CAN_BUILD =
  process.platform === 'linux' && fs.existsSync(path.join(HEADERS, 'node_api.h')) && spawnSync(process.env.CC || 'cc', ['--version']).status === 0;
const BUILT = new NativeOwnerLookup().unavailable === undefined;

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A listener on `listenHost`, a connection to it at `connectHost`; the accepted end. */
async function acceptOne(listenHost: string, connectHost: string): Promise<net.Socket> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, listenHost, r));
  cleanups.push(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const c = net.connect(port, connectHost);
  c.on('error', () => {});
  cleanups.push(() => c.destroy());
  const socket = await accepted;
  cleanups.push(() => socket.destroy());
  return socket;
}

describe('the sock_diag addon', () => {
  it('is built and loads where it can be built (npm ci runs scripts/build-native.mjs)', () => {
    // Not a skip: on Linux with a compiler and the headers, a missing addon is a failure.
    if (!CAN_BUILD) {
      expect(BUILT).toBe(false);
      return;
    }
    expect(new NativeOwnerLookup().unavailable, 'run `node scripts/build-native.mjs` (npm ci does)').toBeUndefined();
  });
});

describe.runIf(BUILT)('exact owner lookups against /proc/self/net/tcp{,6}', () => {
  const CASES = [
    ['IPv4', '127.0.0.1', '127.0.0.1'],
    ['IPv6', '::1', '::1'],
    ['IPv4 on a dual-stack listener', '::', '127.0.0.1'],
    ['IPv4-mapped from a dual-stack socket', '::', '::ffff:127.0.0.1'],
  ] as const;

  it.each(CASES)('%s: the same uid as /proc, this process', async (_, listenHost, connectHost) => {
    const socket = await acceptOne(listenHost, connectHost);
    const exact = new NativeOwnerLookup().ownerOf(socket);
    expect(exact).toEqual({ known: true, uid: process.getuid!() });
    expect(findOwnerInTables(await readProcTables(), socket)).toBe(process.getuid!());
  });

  it('finds nothing for a four-tuple that no socket has (a port off by one)', async () => {
    const socket = await acceptOne('127.0.0.1', '127.0.0.1');
    const lookup = new NativeOwnerLookup();
    expect(
      lookup.ownerOf({
        ...socket,
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort! + 1,
        localAddress: socket.localAddress,
        localPort: socket.localPort,
      }),
    ).toEqual({ known: false });
    expect(lookup.unavailable).toBeUndefined();
  });

  it('passes a time-wait socket over (inode 0 is nobody): /proc decides', async () => {
    const fake: SockDiagBinding = { lookup: () => [0, 0, 6] };
    expect(new NativeOwnerLookup(() => fake).ownerOf({ remoteAddress: '127.0.0.1', remotePort: 5, localAddress: '127.0.0.1', localPort: 6 })).toEqual({
      known: false,
    });
    const listener: SockDiagBinding = { lookup: () => [0, 77, 10] };
    expect(new NativeOwnerLookup(() => listener).ownerOf({ remoteAddress: '127.0.0.1', remotePort: 5, localAddress: '127.0.0.1', localPort: 6 })).toEqual({
      known: false,
    });
  });

  it('refuses malformed arguments with a TypeError, not a crash', () => {
    const binding = defaultSockDiagLoader();
    expect(() => binding.lookup(5 as 4, new Uint8Array(4), 1, new Uint8Array(4), 2)).toThrow(TypeError);
    expect(() => binding.lookup(4, new Uint8Array(16), 1, new Uint8Array(4), 2)).toThrow(TypeError);
    expect(() => binding.lookup(6, new Uint8Array(16), 70000, new Uint8Array(16), 2)).toThrow(TypeError);
  });
});

describe('PeerOwnerLookup with the exact lookup first', () => {
  const ends = { remoteAddress: '127.0.0.1', remotePort: 40000, localAddress: '127.0.0.1', localPort: 1080 };
  const noScan: ScanTable = () => Promise.reject(new Error('/proc read although the exact lookup answered'));

  it('answers from the kernel lookup without reading /proc', async () => {
    let asked = 0;
    const native = new NativeOwnerLookup(() => ({ lookup: () => (asked++, [1234, 99, 1]) }));
    expect(await new PeerOwnerLookup(undefined, noScan, native).ownerOf(ends)).toBe(1234);
    expect(asked).toBe(1);
  });

  it('reads /proc when the kernel lookup finds nothing', async () => {
    let scanned = 0;
    const scan: ScanTable = (_, lines) => {
      scanned++;
      lines('');
      return Promise.resolve();
    };
    const native = new NativeOwnerLookup(() => ({ lookup: () => null }));
    expect(await new PeerOwnerLookup(undefined, scan, native).ownerOf(ends)).toBeUndefined();
    expect(scanned).toBeGreaterThan(0);
  });

  it('turns the addon off for good when netlink is refused, and reads /proc from then on', async () => {
    let asked = 0;
    const native = new NativeOwnerLookup(() => ({
      lookup: () => {
        asked++;
        throw Object.assign(new Error('sock_diag socket: Address family not supported by protocol'), { code: 'ERR_SOCK_DIAG' });
      },
    }));
    let scanned = 0;
    const scan: ScanTable = (_, lines) => {
      scanned++;
      lines('');
      return Promise.resolve();
    };
    const lookup = new PeerOwnerLookup(undefined, scan, native);
    await lookup.ownerOf(ends);
    await lookup.ownerOf(ends);
    expect(asked).toBe(1);
    expect(scanned).toBeGreaterThanOrEqual(2);
    expect(lookup.nativeUnavailable).toMatch(/netlink refused/);
  });

  it('a missing addon is reported, not thrown', () => {
    const lookup = new NativeOwnerLookup(() => {
      throw Object.assign(new Error("Cannot find module './twoway-sock-diag.node'"), { code: 'MODULE_NOT_FOUND' });
    });
    expect(lookup.unavailable).toMatch(/MODULE_NOT_FOUND/);
    expect(lookup.ownerOf(ends)).toEqual({ known: false });
  });
});
