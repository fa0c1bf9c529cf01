/**
 * `twoway connect HOST:PORT`: standard input and output become one tunnel stream (ssh
 * ProxyCommand). End of input is carried as a FIN; the output ends when the far end finishes.
 * A refusal rejects with the stream's error (its code and reason), so the CLI can say why.
 */
import type { Duplex, Readable, Writable } from 'node:stream';
import type { StreamOpener } from './local-forward.js';

export interface StdioOptions {
  readonly stdin: Readable;
  readonly stdout: Writable;
}

/** Resolves with 0 after a clean end both ways; rejects if the stream is refused or reset. */
export function connectStdio(target: string, open: StreamOpener, io: StdioOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream: Duplex = open(target);
    let settled = false;
    const settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      io.stdin.unpipe(stream);
      io.stdin.pause();
      if (err) reject(err);
      else resolve(0);
    };
    stream.on('error', (err) => settle(err));
    stream.on('data', (chunk: Buffer) => {
      if (!io.stdout.write(chunk)) stream.pause();
    });
    io.stdout.on('drain', () => stream.resume());
    io.stdout.on('error', (err) => {
      stream.destroy(err);
      settle(err);
    });
    stream.on('end', () => {
      // The far end finished: flush what we wrote, then we are done once our side ended too.
      // stdout stays open: the process ends when the CLI returns.
    });
    stream.on('close', () => settle());
    io.stdin.pipe(stream);
  });
}
