/**
 * The `ws` options twoway uses on both ends, in one place so client and server cannot drift.
 * SECURITY.md #12: ws defaults (100 MiB payloads, permessage-deflate on clients) are overridden.
 */

/** How long a WebSocket close handshake may take before the socket is destroyed. */
export const WS_CLOSE_TIMEOUT_MS = 2_000;

/** Records are always sent as one unfragmented frame; a little slack for other clients. */
export const WS_MAX_FRAGMENTS = 16;

/**
 * Client frames must carry a mask (RFC 6455 §5.3) but every record is already ChaCha20-Poly1305
 * ciphertext, and masking only protects naive intermediaries from attacker-chosen plaintext.
 * An all-zero mask makes `ws` skip the XOR pass (and its copy) entirely.
 */
export function generateZeroMask(mask: Uint8Array): void {
  mask.fill(0);
}

/** Options shared by the `ws` client and server. */
export function commonWsOptions(maxPayloadBytes: number) {
  return {
    perMessageDeflate: false,
    maxPayload: maxPayloadBytes,
    // Only binary records are accepted; text is a protocol error before any UTF-8 work.
    skipUTF8Validation: true,
    // Liveness is the session's encrypted keepalive; unauthenticated pings get no answer.
    autoPong: false,
    closeTimeout: WS_CLOSE_TIMEOUT_MS,
    maxFragments: WS_MAX_FRAGMENTS,
  } as const;
}
