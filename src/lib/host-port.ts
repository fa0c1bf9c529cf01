/**
 * `host:port` text: the one place that splits and formats it. IPv6 literals go in brackets
 * (`[::1]:8443`), as in URLs, so the last colon is never ambiguous. What a host or port may be
 * is the caller's business (a listen address, a target, an access rule): this only cuts.
 */

/** Why a text is not `host:port` at all. */
export type HostPortProblem =
  /** `[` without a following `]:`. */
  | 'unclosed-bracket'
  /** No colon, or nothing before it. */
  | 'no-port'
  /** A colon in an unbracketed host: an IPv6 literal without brackets. */
  | 'unbracketed-ipv6';

export type HostPortSplit =
  { readonly ok: true; readonly host: string; readonly port: string; readonly bracketed: boolean } | { readonly ok: false; readonly problem: HostPortProblem };

/**
 * Cuts `host:port` or `[host]:port` into its parts. `host` comes without brackets; `bracketed`
 * says it had them (callers check it is an IPv6 literal, or an IPv6 range for access rules).
 */
export function splitHostPort(text: string): HostPortSplit {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return { ok: false, problem: 'unclosed-bracket' };
    return { ok: true, host: text.slice(1, close), port: text.slice(close + 2), bracketed: true };
  }
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return { ok: false, problem: 'no-port' };
  const host = text.slice(0, colon);
  if (host.includes(':')) return { ok: false, problem: 'unbracketed-ipv6' };
  return { ok: true, host, port: text.slice(colon + 1), bracketed: false };
}

const PORT_DIGITS = /^[0-9]{1,5}$/;

/** A port of decimal digits in 1-65535 (0 too when `allowZero`), or undefined. */
export function parsePortNumber(text: string, allowZero = false): number | undefined {
  if (!PORT_DIGITS.test(text)) return undefined;
  const port = Number(text);
  if (port > 65535 || (port === 0 && !allowZero)) return undefined;
  return port;
}

/** `host:port`, bracketing an IPv6 literal (a host with a colon, not bracketed already). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}
