import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listenLocal, type ListenerHandle } from '../../../src/forward/local-listener.js';
import { readProcTables } from '../../../src/forward/peer-owner.js';
import { waitUntil } from '../../helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function capture(): { lines: Array<Record<string, unknown>>; logger: { debug(): void; warn(f: object): void } } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, logger: { debug() {}, warn: (f: object) => lines.push(f as Record<string, unknown>) } };
}

async function connectOnce(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => c.write('x'));
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    c.on('close', () => resolve('closed'));
    c.on('data', () => resolve('data'));
  });
}

describe('listenLocal owner check', () => {
  it('refuses connections whose owner is not in the tables, and logs one line per interval plus a count', async () => {
    const { lines, logger } = capture();
    let admitted = 0;
    // Tables that never contain the connecting socket: every owner is unknown.
    const handle: ListenerHandle = await listenLocal(
      {
        listen: { host: '127.0.0.1', port: 0 },
        kind: 'forward',
        logger,
        readTables: async () => ['  sl  local_address rem_address\n', ''],
        refusalLogIntervalMs: 100,
      },
      (s) => {
        admitted++;
        s.end('hello');
      },
    );
    cleanups.push(() => handle.close());
    const port = handle.address()!.port;
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => connectOnce(port)));
    expect(outcomes.every((o) => o === 'ECONNRESET' || o === 'closed')).toBe(true);
    expect(admitted).toBe(0);
    await waitUntil(() => lines.length >= 2, 'the refusal and its summary', 5_000);
    expect(lines[0]).toMatchObject({ event: 'local.refused', reason: 'owner-unknown', kind: 'forward', listen: `127.0.0.1:${port}`, uid: null });
    expect(lines[1]).toMatchObject({ event: 'local.refused', suppressed: 19 });
    expect(lines).toHaveLength(2);
  });

  it('admits this user with the real tables, and fails to start when they cannot be read', async () => {
    const handle = await listenLocal({ listen: { host: '127.0.0.1', port: 0 }, readTables: readProcTables }, (s) => s.end('hello'));
    cleanups.push(() => handle.close());
    expect(await connectOnce(handle.address()!.port)).toBe('data');
    const unreadable = async (): Promise<string[]> => {
      throw Object.assign(new Error('no'), { code: 'EACCES' });
    };
    await expect(listenLocal({ listen: { host: '127.0.0.1', port: 0 }, readTables: unreadable }, () => {})).rejects.toThrow(
      /127\.0\.0\.1:0: the owner check of local connections needs \/proc\/self\/net\/tcp cannot be read \(EACCES\); listen on a unix: path, or set allow_other_users = true/,
    );
    // Opting out needs no tables.
    const open = await listenLocal({ listen: { host: '127.0.0.1', port: 0 }, access: { allowOtherUsers: true }, readTables: unreadable }, (s) =>
      s.end('hello'),
    );
    cleanups.push(() => open.close());
    expect(await connectOnce(open.address()!.port)).toBe('data');
  });
});
