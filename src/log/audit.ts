/**
 * Audit events as typed values, beside their log lines: what the server's metrics count
 * (src/server/metrics.ts). The log level decides which lines are written, never what is counted;
 * the daemon and the device router call the sink directly.
 */
export type AuditEvent =
  | { readonly type: 'handshake-accepted' }
  | { readonly type: 'handshake-refused'; readonly reason: string }
  /** A stream opened to a target, or relayed into a device (`via`). */
  | { readonly type: 'stream-opened'; readonly via: 'target' | 'device' }
  | { readonly type: 'stream-refused'; readonly via: 'target' | 'device'; readonly reason: string }
  /** Bytes towards the target (or device) and back, once the stream closed. */
  | { readonly type: 'stream-closed'; readonly via: 'target' | 'device'; readonly bytesToTarget: number; readonly bytesFromTarget: number }
  | { readonly type: 'reload'; readonly ok: boolean }
  /** One answered verification request (`outcome`: accepted, or the refusal's error code). */
  | { readonly type: 'verification'; readonly method: 'totp' | 'oidc' | 'none'; readonly outcome: string };

export type AuditSink = (event: AuditEvent) => void;

/** The sink when nobody counts. */
export const NO_AUDIT: AuditSink = () => {};
