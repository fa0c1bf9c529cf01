/**
 * PROXY protocol version 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt, section 2.2): the
 * binary header a trusted TCP proxy sends before the client's first byte, naming the client's
 * address. Only version 2, only from trusted proxies (src/transport/trusted-proxies.ts).
 *
 *   12 bytes signature  \r\n\r\n\0\r\nQUIT\n
 *   1 byte  version (high nibble, 2) and command (low: 0 LOCAL, 1 PROXY)
 *   1 byte  family (high: 1 INET, 2 INET6) and transport (low: 1 STREAM)
 *   2 bytes length of what follows (big-endian): addresses, then TLVs (ignored)
 */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const FIXED_BYTES = 16;
/** Addresses plus TLVs; haproxy sends well under this. Longer headers are refused. */
export const MAX_PROXY_V2_PAYLOAD_BYTES = 4096;

export type ProxyHeaderResult =
  | { readonly kind: 'need-more' }
  | { readonly kind: 'invalid'; readonly why: string }
  /** `client` undefined: a LOCAL command or an unknown family (the proxy's own health check). */
  | { readonly kind: 'done'; readonly client?: { readonly ip: string; readonly port: number }; readonly headerBytes: number };

/** Parses a PROXY v2 header at the start of `data` (everything received so far). */
export function parseProxyV2(data: Buffer): ProxyHeaderResult {
  const sig = Math.min(data.length, PROXY_V2_SIGNATURE.length);
  if (!data.subarray(0, sig).equals(PROXY_V2_SIGNATURE.subarray(0, sig))) return { kind: 'invalid', why: 'no PROXY protocol v2 signature' };
  if (data.length < FIXED_BYTES) return { kind: 'need-more' };
  const versionCommand = data[12]!;
  if (versionCommand >> 4 !== 2) return { kind: 'invalid', why: `PROXY protocol version ${versionCommand >> 4}` };
  const command = versionCommand & 0x0f;
  if (command > 1) return { kind: 'invalid', why: `PROXY command ${command}` };
  const length = data.readUInt16BE(14);
  if (length > MAX_PROXY_V2_PAYLOAD_BYTES) return { kind: 'invalid', why: `PROXY header of ${length} bytes` };
  if (data.length < FIXED_BYTES + length) return { kind: 'need-more' };
  const headerBytes = FIXED_BYTES + length;
  const family = data[13]!;
  if (command === 0) return { kind: 'done', headerBytes };
  const body = data.subarray(FIXED_BYTES, headerBytes);
  if (family === 0x11) {
    if (length < 12) return { kind: 'invalid', why: 'PROXY TCP4 header too short' };
    return { kind: 'done', client: { ip: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) }, headerBytes };
  }
  if (family === 0x21) {
    if (length < 36) return { kind: 'invalid', why: 'PROXY TCP6 header too short' };
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
    return { kind: 'done', client: { ip: groups.join(':'), port: body.readUInt16BE(32) }, headerBytes };
  }
  // UNSPEC, UDP or unix: nothing we could limit by; treated as the proxy's own connection.
  return { kind: 'done', headerBytes };
}
