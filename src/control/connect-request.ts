/**
 * The CLI's half of `twoway connect` through a running client daemon (the daemon's half is
 * connect-serve.ts): check the socket may be trusted with the target, send the request, read the
 * answer line, and hand back the framed stream. What the outcomes mean for an exit status is the
 * CLI's business; a refusal by the daemon is thrown as the stream's refusal.
 */
import net from 'node:net';
import { ConfigError } from '../errors.js';
import { MuxStreamError, toReasonCode } from '../mux/reason.js';
import { ControlStream } from './control-stream.js';
import { controlSocketTrust } from './control-trust.js';
import { LineTooLongError, readLine } from './json-line.js';

export type ConnectAnswer =
  /** No socket at the path, or nothing listening on it: the caller may make a session of its own. */
  | { readonly kind: 'no-daemon' }
  /** Another user may have put the socket there (control-trust.ts): the target is not sent. */
  | { readonly kind: 'untrusted'; readonly why: string }
  /** The socket closed without an answer, or the answer was not JSON or too long. */
  | { readonly kind: 'bad-answer'; readonly why: 'closed' | 'malformed' | 'too-long' }
  /** A daemon that does not know `connect` (a server's socket). */
  | { readonly kind: 'not-a-client-daemon'; readonly message: string }
  /** The stream is open: `stream()` makes its Duplex (once, when the caller is ready to listen). */
  | { readonly kind: 'open'; readonly stream: () => ControlStream };

/**
 * Asks the daemon behind `socketPath` for a stream to `target`. Rejects with the stream's refusal
 * (MuxStreamError 'ERR_MUX_STREAM_REFUSED' with the daemon's reason), or ConfigError 'ERR_CONTROL'
 * when the socket cannot be used (permission denied).
 */
export async function requestConnect(socketPath: string, target: string, uid: number): Promise<ConnectAnswer> {
  const trust = controlSocketTrust(socketPath, uid);
  if (trust.kind === 'absent' || trust.kind === 'not-a-socket') return { kind: 'no-daemon' };
  if (trust.kind === 'untrusted') return { kind: 'untrusted', why: trust.why };
  const socket = await new Promise<net.Socket | undefined>((resolve, reject) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.off('error', onError);
      resolve(s);
    });
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(undefined);
      else reject(new ConfigError('ERR_CONTROL', `control socket ${socketPath}: ${err.code === 'EACCES' ? 'permission denied' : (err.code ?? err.message)}`));
    };
    s.once('error', onError);
  });
  if (socket === undefined) return { kind: 'no-daemon' };
  socket.on('error', () => {});
  socket.write(`${JSON.stringify({ cmd: 'connect', target })}\n`);
  let answer: string | undefined;
  try {
    answer = await readLine(socket);
  } catch (err) {
    socket.destroy();
    if (err instanceof LineTooLongError) return { kind: 'bad-answer', why: 'too-long' };
    throw err;
  }
  if (answer === undefined) {
    socket.destroy();
    return { kind: 'bad-answer', why: 'closed' };
  }
  let reply: { ok?: unknown; error?: unknown; reason?: unknown };
  try {
    reply = JSON.parse(answer) as typeof reply;
  } catch {
    socket.destroy();
    return { kind: 'bad-answer', why: 'malformed' };
  }
  if (reply.ok !== true) {
    socket.destroy();
    const reason = toReasonCode(reply.reason);
    const message = typeof reply.error === 'string' ? reply.error.slice(0, 1000) : `stream to ${target} refused`;
    if (reason === 'error' && typeof reply.error === 'string' && reply.error.startsWith('unknown control command')) {
      return { kind: 'not-a-client-daemon', message };
    }
    throw new MuxStreamError('ERR_MUX_STREAM_REFUSED', message, reason);
  }
  return { kind: 'open', stream: () => new ControlStream(socket) };
}
