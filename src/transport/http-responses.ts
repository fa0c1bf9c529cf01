/**
 * Bare HTTP responses written straight to an upgrade socket: no body, no Server or Date header,
 * nothing that names the software or its version. Each status always produces the same bytes for
 * the same extra headers, so refusals cannot be told apart by their shape.
 */
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';

/** Header names and values must be plain tokens; refuse anything that could split the response. */
const SAFE_HEADER = /^[\x21-\x7e][\x20-\x7e]*$/;

/** Serialises a bare response (status line, extra headers, Connection: close, empty body). */
export function bareResponse(status: number, headers: Readonly<Record<string, string>> = {}): string {
  let out = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!SAFE_HEADER.test(name) || !SAFE_HEADER.test(value)) {
      throw new TypeError(`unsafe response header ${JSON.stringify(name)}`);
    }
    out += `${name}: ${value}\r\n`;
  }
  return `${out}Connection: close\r\nContent-Length: 0\r\n\r\n`;
}

/** Writes a bare response and ends the socket (the caller's deadline destroys laggards). */
export function refuseUpgrade(socket: Duplex, status: number, headers?: Readonly<Record<string, string>>): void {
  if (socket.destroyed) return;
  socket.end(bareResponse(status, headers));
}
