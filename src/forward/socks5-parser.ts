/**
 * A pure, resumable SOCKS5 parser (RFC 1928) for the client side: the greeting, then one CONNECT
 * request. Only "no authentication" is offered. Feed bytes with push(); it returns what it has
 * decided so far. Anything malformed is a typed error.
 */
import net from 'node:net';
import { ForwardError } from '../errors.js';
import { formatHostPort } from '../lib/host-port.js';
import { canonicalIPv6, parseLegacyIPv4 } from '../policy/address.js';

export const SOCKS_VERSION = 5;
export const AUTH_NONE = 0x00;
export const AUTH_NO_ACCEPTABLE = 0xff;
export const CMD_CONNECT = 0x01;
export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;
/** A greeting plus the longest request: 2 + 255 + 4 + 1 + 255 + 2 bytes. */
export const MAX_SOCKS_HANDSHAKE_BYTES = 519;

export type SocksEvent =
  | { readonly kind: 'greeting'; readonly acceptable: boolean }
  | { readonly kind: 'request'; readonly command: number; readonly target: string }
  | { readonly kind: 'need-more' };

function protocolError(message: string): ForwardError {
  return new ForwardError('ERR_SOCKS_PROTOCOL', `SOCKS5: ${message}`);
}

/** Parser stages: greeting -> request -> done. */
export type Socks5Stage = 'greeting' | 'request' | 'done';

/** Resumable: feed any split of the bytes; throws ForwardError 'ERR_SOCKS_PROTOCOL' when malformed. */
export class Socks5Parser {
  #buffer = Buffer.alloc(0);
  #stage: Socks5Stage = 'greeting';

  get stage(): Socks5Stage {
    return this.#stage;
  }

  /** Bytes received after the request (the application's first data). */
  rest(): Buffer {
    return this.#buffer;
  }

  /** Adds bytes and returns the next event (call again with an empty chunk for further events). */
  push(chunk: Uint8Array): SocksEvent {
    if (this.#stage === 'done') throw protocolError('request already parsed');
    // Bounded: each stage decides once it holds at most MAX_SOCKS_HANDSHAKE_BYTES, so 'need-more'
    // never lets the buffer grow past that plus one chunk (the caller stops reading after 'request').
    if (chunk.length > 0) this.#buffer = this.#buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buffer, chunk]);
    return this.#stage === 'greeting' ? this.#greeting() : this.#request();
  }

  #greeting(): SocksEvent {
    const b = this.#buffer;
    if (b.length < 2) return { kind: 'need-more' };
    if (b[0] !== SOCKS_VERSION) throw protocolError(`version ${b[0]} is not 5`);
    const n = b[1]!;
    if (n === 0) throw protocolError('no authentication methods offered');
    if (b.length < 2 + n) return { kind: 'need-more' };
    const methods = b.subarray(2, 2 + n);
    this.#buffer = b.subarray(2 + n);
    this.#stage = 'request';
    return { kind: 'greeting', acceptable: methods.includes(AUTH_NONE) };
  }

  #request(): SocksEvent {
    const b = this.#buffer;
    if (b.length < 5) return { kind: 'need-more' };
    if (b[0] !== SOCKS_VERSION) throw protocolError(`request version ${b[0]} is not 5`);
    if (b[2] !== 0) throw protocolError('reserved byte is not zero');
    const atyp = b[3];
    let host: string;
    let offset: number;
    if (atyp === ATYP_IPV4) {
      if (b.length < 10) return { kind: 'need-more' };
      host = [...b.subarray(4, 8)].join('.');
      offset = 8;
    } else if (atyp === ATYP_IPV6) {
      if (b.length < 22) return { kind: 'need-more' };
      const groups: string[] = [];
      for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(4 + i * 2).toString(16));
      host = canonicalIPv6(groups.join(':'));
      offset = 20;
    } else if (atyp === ATYP_DOMAIN) {
      const len = b[4]!;
      if (len === 0) throw protocolError('empty domain name');
      if (b.length < 5 + len + 2) return { kind: 'need-more' };
      host = b.subarray(5, 5 + len).toString('latin1');
      if (net.isIPv6(host)) {
        // Some clients send an IPv6 literal as a "domain".
        host = canonicalIPv6(host);
      } else {
        if (!/^[A-Za-z0-9._-]+$/.test(host)) throw protocolError('domain name has characters a host name cannot have');
        // A numeric "name" is an address in some spelling: keep it as the normalised address.
        host = parseLegacyIPv4(host) ?? host;
      }
      offset = 5 + len;
    } else {
      throw protocolError(`address type ${atyp} is not supported`);
    }
    const port = b.readUInt16BE(offset);
    if (port === 0) throw protocolError('port 0');
    this.#buffer = b.subarray(offset + 2);
    this.#stage = 'done';
    return { kind: 'request', command: b[1]!, target: formatHostPort(host, port) };
  }
}

/** Reply codes (RFC 1928 section 6). */
export const SocksReply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** A reply with bound address 0.0.0.0:0. */
export function encodeReply(code: number): Buffer {
  return Buffer.from([SOCKS_VERSION, code, 0x00, ATYP_IPV4, 0, 0, 0, 0, 0, 0]);
}
