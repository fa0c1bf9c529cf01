/**
 * A target whose dials hang: a listener with a backlog of one in a child process whose event loop
 * is blocked, so it never accepts. The kernel completes two handshakes into the accept queue
 * (the test makes them, `fill()`), then drops every further SYN: a dial to it neither connects
 * nor fails until its own timeout. Deterministic on loopback, no timing involved.
 */
import net from 'node:net';
import { Proc } from './processes.js';

const CHILD = `
const net = require('node:net');
const server = net.createServer();
server.listen({ port: 0, host: process.argv[1], backlog: 1 }, () => {
  process.stdout.write(server.address().port + '\\n');
  // Block the event loop (no CPU): the listening socket is never accepted from.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.argv[2]));
  process.exit(0);
});`;

export interface SlowTarget {
  readonly port: number;
  readonly proc: Proc;
  stop(): Promise<void>;
}

/** Starts the blocked listener on `host` (it exits by itself after `lifetimeMs`). */
export async function startSlowTarget(host = '127.0.0.1', lifetimeMs = 120_000): Promise<SlowTarget> {
  const proc = new Proc(process.execPath, ['-e', CHILD, host, String(lifetimeMs)]);
  await proc.waitFor((p) => /^\d+\n/.test(p.stdout), 'the slow target to listen');
  const port = Number(proc.stdout.trim());
  const fillers: net.Socket[] = [];
  // Two handshakes fill a backlog of one (the kernel admits backlog + 1).
  for (let i = 0; i < 2; i++) {
    const s = net.connect(port, host);
    s.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    });
    fillers.push(s);
  }
  return {
    port,
    proc,
    stop: async () => {
      for (const s of fillers) s.destroy();
      await proc.stop();
    },
  };
}
