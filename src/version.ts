/** The package version, kept in step with package.json (a test checks). */
export const VERSION = '0.1.0';
/** The wire protocol version, bound into the prologue and the WebSocket subprotocol. */
export const PROTOCOL_VERSION = 1;
