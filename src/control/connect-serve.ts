/**
 * The daemon's half of `twoway connect` through the control socket: open the stream, answer one
 * JSON line (open, or refused with its reason), then carry the stream both ways in control-stream
 * frames. The CLI's half is connect-request.ts.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { relayStreams } from '../forward/relay.js';
import { ControlStream } from './control-stream.js';

/** Serves one `{"cmd":"connect","target":...}` request on `socket` (the handler then owns it). */
export function serveConnect(open: (target: string) => Duplex, target: string, socket: net.Socket): void {
  const stream = open(target);
  let answered = false;
  stream.once('open', () => {
    answered = true;
    socket.write(`${JSON.stringify({ ok: true })}\n`);
    // Framed from here on (control-stream.ts): a half-close and a reset each reach the
    // `twoway connect` process as such, with the reason, never as a plain end of the socket.
    relayStreams(stream, new ControlStream(socket));
  });
  stream.once('error', (err: Error & { reason?: string; code?: string }) => {
    if (answered) return;
    answered = true;
    socket.end(`${JSON.stringify({ ok: false, error: err.message, reason: err.reason ?? 'error', code: err.code })}\n`);
  });
  // The caller waits for the answer line before sending, so nothing is read until then.
  socket.once('close', () => {
    if (!answered) stream.destroy();
  });
}
