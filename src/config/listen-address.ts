/**
 * `host:port` addresses for listeners and config targets: an IPv4 or bracketed IPv6 literal, or a
 * DNS name. The text is cut by src/lib/host-port.ts, which also formats it.
 */
import { isIP } from 'node:net';
import { parsePortNumber, splitHostPort } from '../lib/host-port.js';
import type { TableReader } from './fields.js';

/** A parsed listen address; `host` is bare (no brackets). */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Host names as DNS allows them (RFC 1123 labels), lower or upper case. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parses `host:port` (`0.0.0.0:8443`, `[::]:8443`, `localhost:1080`). Returns undefined when the
 * text is not one; callers turn that into an error naming their file and key.
 * `allowPortZero` accepts port 0 (an ephemeral port, useful in tests).
 */
export function parseListenAddress(text: string, allowPortZero = false): ListenAddress | undefined {
  const split = splitHostPort(text);
  if (!split.ok) return undefined;
  const { host } = split;
  if (split.bracketed ? isIP(host) !== 6 : isIP(host) !== 4 && !HOST_NAME.test(host)) return undefined;
  const port = parsePortNumber(split.port, allowPortZero);
  return port === undefined ? undefined : { host, port };
}

/**
 * Parses a listen address, throwing a plain Error whose message is
 * `expected "host:port", got "abc"`; config loaders prefix the file and key.
 */
export function parseListen(text: string, allowPortZero = false): ListenAddress {
  const parsed = parseListenAddress(text, allowPortZero);
  if (parsed === undefined) {
    throw new Error(`expected "host:port" (IPv6 as "[::1]:port"), got ${JSON.stringify(text.slice(0, 64))}`);
  }
  return parsed;
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
