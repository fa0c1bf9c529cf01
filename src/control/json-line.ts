/**
 * The one reader of the control socket's JSON lines: a request (control-server.ts) and the answer
 * to `connect` (connect-request.ts) are each one line, after which the socket may carry other
 * bytes (the framed stream), which are left in the socket for the next reader.
 */
import type net from 'node:net';

/** A request or an answer line longer than this is refused. */
export const MAX_LINE_BYTES = 64 * 1024;

export class LineTooLongError extends Error {
  constructor(maxBytes: number) {
    super(`line longer than ${maxBytes} bytes`);
  }
}

/**
 * Reads one newline-terminated line (without the newline). Resolves undefined when the socket
 * ends or closes first; rejects with LineTooLongError past `maxBytes` without a newline. What came
 * after the line is unshifted back into the socket, which is left paused.
 */
export function readLine(socket: net.Socket, maxBytes = MAX_LINE_BYTES): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const done = (): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline < 0) {
        if (buffered.length > maxBytes) {
          done();
          reject(new LineTooLongError(maxBytes));
        }
        return;
      }
      done();
      socket.pause();
      const rest = buffered.subarray(newline + 1);
      if (rest.length > 0) socket.unshift(rest);
      resolve(buffered.subarray(0, newline).toString('utf8'));
    };
    const onEnd = (): void => {
      done();
      resolve(undefined);
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}
