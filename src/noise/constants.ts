/** Noise spec constants (rev 34) that the engine enforces. */

/** Section 3: every Noise message, handshake or transport, is at most 65535 bytes. */
export const MAX_MESSAGE_BYTES = 65535;
/** Largest plaintext of one transport message: the message limit minus the AEAD tag. */
export const MAX_PLAINTEXT_BYTES = MAX_MESSAGE_BYTES - 16;
/** Section 5.1: nonce 2^64-1 is reserved (Rekey uses it); a cipher state never uses it for a message. */
export const MAX_NONCE = 2n ** 64n - 1n;
/** Section 9: a psk is 32 bytes. */
export const PSK_BYTES = 32;
