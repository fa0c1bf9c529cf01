/**
 * `host:port` addresses for listeners and targets. IPv6 literals are bracketed (`[::1]:8443`) as in
 * URLs, so the last colon is never ambiguous.
 */
import { isIP } from 'node:net';
import type { TableReader } from './fields.js';

/** A parsed listen address; `host` is bare (no brackets). */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Host names as DNS allows them (RFC 1123 labels), lower or upper case. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const PORT = /^[0-9]{1,5}$/;

/**
 * Parses `host:port` (`0.0.0.0:8443`, `[::]:8443`, `localhost:1080`). Returns undefined when the
 * text is not one; callers turn that into an error naming their file and key.
 * `allowPortZero` accepts port 0 (an ephemeral port, useful in tests).
 */
export function parseHostPort(text: string, allowPortZero = false): ListenAddress | undefined {
  let host: string;
  let port: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return undefined;
    host = text.slice(1, close);
    port = text.slice(close + 2);
    if (isIP(host) !== 6) return undefined;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) return undefined;
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
    // An unbracketed IPv6 literal would make the port ambiguous.
    if (host.includes(':')) return undefined;
    if (isIP(host) !== 4 && !HOST_NAME.test(host)) return undefined;
  }
  if (!PORT.test(port)) return undefined;
  const n = Number(port);
  if (n > 65535 || (n === 0 && !allowPortZero)) return undefined;
  return { host, port: n };
}

/**
 * Parses a listen address, throwing a plain Error whose message is
 * `expected "host:port", got "abc"`; config loaders prefix the file and key.
 */
export function parseListen(text: string, allowPortZero = false): ListenAddress {
  const parsed = parseHostPort(text, allowPortZero);
  if (parsed === undefined) {
    throw new Error(`expected "host:port" (IPv6 as "[::1]:port"), got ${JSON.stringify(text.slice(0, 64))}`);
  }
  return parsed;
}

/** `host:port`, bracketing IPv6 literals. */
export function formatHostPort(address: ListenAddress): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** Reads a listen-address key of a config table (port 0, an ephemeral port, is accepted). */
export function readListen(t: TableReader, key: string): ListenAddress | undefined {
  const text = t.optionalString(key);
  if (text === undefined) return undefined;
  try {
    return parseListen(text, true);
  } catch (err) {
    throw t.fail(key, (err as Error).message);
  }
}
