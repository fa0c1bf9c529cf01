/**
 * `twoway connect HOST:PORT`: standard input and output become one tunnel stream (ssh
 * ProxyCommand). End of input is carried as a FIN (the other direction stays open); the far
 * end's FIN ends the output. Done when both directions ended; a refusal or a reset rejects with
 * the stream's error (its code and reason), so the CLI can say why and exit non-zero.
 */
import type { Duplex, Readable, Writable } from 'node:stream';
import { ForwardError } from '../errors.js';
import type { StreamOpener } from './local-forward.js';

export interface StdioOptions {
  readonly stdin: Readable;
  readonly stdout: Writable;
  /** End `stdout` when the far end finishes (default true). */
  readonly endStdout?: boolean;
}

/** Exit status of a stream that ended cleanly both ways. */
export const STDIO_EXIT_OK = 0;

/**
 * Pipes `stdin` -> stream -> `stdout` with backpressure. Resolves with STDIO_EXIT_OK after a
 * clean end both ways (and stdout flushed); rejects with the stream's error when refused or
 * reset, or ForwardError 'ERR_FORWARD_ABORTED' when the stream closed without a clean end.
 */
export function connectStdio(target: string, open: StreamOpener, io: StdioOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream: Duplex = open(target);
    const { stdin, stdout } = io;
    let settled = false;
    let outputDone = io.endStdout === false;
    let streamDone = false;

    const cleanup = (): void => {
      stdin.unpipe(stream);
      stdin.off('error', onStdinError);
      stdout.off('drain', onDrain);
      stdout.off('error', onStdoutError);
      stdin.pause();
    };
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(err);
    };
    const maybeDone = (): void => {
      if (settled || !streamDone || !outputDone) return;
      settled = true;
      cleanup();
      resolve(STDIO_EXIT_OK);
    };
    const onDrain = (): void => {
      stream.resume();
    };
    const onStdoutError = (err: Error): void => {
      stream.destroy(err);
      fail(err);
    };
    const onStdinError = (err: Error): void => {
      stream.destroy(err);
      fail(err);
    };

    stream.on('error', fail);
    stream.on('data', (chunk: Buffer) => {
      if (!stdout.write(chunk)) stream.pause();
    });
    stream.on('end', () => {
      if (io.endStdout === false) return;
      stdout.end(() => {
        outputDone = true;
        maybeDone();
      });
    });
    stream.on('close', () => {
      if (stream.readableEnded && stream.writableFinished) {
        streamDone = true;
        maybeDone();
      } else {
        // Destroyed without an error ('error' would have come first): still not a clean end.
        fail(new ForwardError('ERR_FORWARD_ABORTED', `stream to ${String(target).slice(0, 300)} closed before both directions ended`));
      }
    });
    stdout.on('drain', onDrain);
    stdout.on('error', onStdoutError);
    stdin.on('error', onStdinError);
    // pipe() ends the stream when stdin ends: our FIN, the other direction stays open.
    stdin.pipe(stream);
  });
}
