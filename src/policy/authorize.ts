/**
 * Authorising one target for one peer: parse and normalise, resolve names here on the server
 * (all addresses), check every RESOLVED address against the peer's rules, and hand back the exact
 * addresses that passed. The dialer connects to those and never resolves again, so a name cannot
 * be re-pointed (DNS rebinding) between the check and the connect (SECURITY.md #4).
 *
 * A denial or failure is a value, not an exception: the daemon logs it with the peer's name.
 */
import dns from 'node:dns';
import type { ForwardErrorCode } from '../errors.js';
import type { AccessRules } from './access-rules.js';
import { canonicalAddress } from './access-rules.js';
import { parseTarget } from './address.js';

/** Resolves a host name to all of its addresses (dns.lookup with `all: true` by default). */
export type Resolver = (host: string) => Promise<ReadonlyArray<{ readonly address: string; readonly family: number }>>;

/** The system resolver, in the order it returns addresses. */
export const systemResolver: Resolver = (host) => dns.promises.lookup(host, { all: true, verbatim: true });

/** Name lookups give up after this long unless the caller says otherwise. */
export const RESOLVE_TIMEOUT_MS = 10_000;

/** Why a target was not authorised; the `reason` is what the stream refusal carries. */
export type DenialReason = 'not-permitted' | 'dns-failure' | 'timeout' | 'cancel';

export interface Granted {
  readonly allowed: true;
  /** The host as asked, normalised (a lower-case name or a canonical address). */
  readonly host: string;
  readonly port: number;
  /** Addresses that passed the check, in resolver order, canonical (IPv4-mapped forms folded). */
  readonly addresses: readonly string[];
}

export interface Denied {
  readonly allowed: false;
  readonly code: ForwardErrorCode;
  readonly reason: DenialReason;
  /** For the log: never contains anything secret. */
  readonly message: string;
  /** The normalised host and port when the target parsed. */
  readonly host?: string;
  readonly port?: number;
  /** Resolved addresses that were refused (for the audit log). */
  readonly refused?: readonly string[];
}

export type Authorization = Granted | Denied;

export interface AuthorizeOptions {
  readonly rules: AccessRules;
  readonly resolver?: Resolver;
  /** The daemon's own addresses: denied unless a rule names them exactly. */
  readonly localAddresses?: readonly string[];
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** Decides whether a peer may reach `target` (`host:port`), resolving names on this side. */
export async function authorizeTarget(target: string, options: AuthorizeOptions): Promise<Authorization> {
  const shown = String(target).slice(0, 300);
  let parsed;
  try {
    parsed = parseTarget(target);
  } catch (err) {
    return { allowed: false, code: 'ERR_TARGET_INVALID', reason: 'not-permitted', message: (err as Error).message };
  }
  const { host, port } = parsed;
  const denied = (refused?: readonly string[]): Denied => ({
    allowed: false,
    code: 'ERR_POLICY_DENIED',
    reason: 'not-permitted',
    message: `${shown}: not permitted for this peer`,
    host,
    port,
    ...(refused ? { refused } : {}),
  });
  const local = options.localAddresses ?? [];

  if (parsed.family !== 0) {
    return options.rules.allowsResolved(host, host, port, local) ? { allowed: true, host, port, addresses: [host] } : denied([host]);
  }
  // No lookups on a peer's whim: only when some rule could grant the result.
  if (!options.rules.mayResolve(host, port)) return denied();

  let found: ReadonlyArray<{ address: string }>;
  try {
    found = await lookupBounded(options.resolver ?? systemResolver, host, options.timeoutMs ?? RESOLVE_TIMEOUT_MS, options.signal);
  } catch (err) {
    const why = err instanceof LookupStop ? err.reason : 'dns-failure';
    const detail = err instanceof LookupStop ? err.message : `name not resolved (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    return { allowed: false, code: why === 'dns-failure' ? 'ERR_DIAL_DNS' : 'ERR_DIAL_TIMEOUT', reason: why, message: `${shown}: ${detail}`, host, port };
  }
  const addresses = found.map((a) => canonicalAddress(a.address)?.address).filter((a): a is string => a !== undefined);
  if (addresses.length === 0) return { allowed: false, code: 'ERR_DIAL_DNS', reason: 'dns-failure', message: `${shown}: name has no addresses`, host, port };
  const permitted = [...new Set(addresses.filter((a) => options.rules.allowsResolved(host, a, port, local)))];
  if (permitted.length === 0) return denied(addresses);
  return { allowed: true, host, port, addresses: permitted };
}

/**
 * The check an open passes before it waits for a dial slot, and that a reload repeats on opens
 * still pending: an address target is decided in full; a name target only as far as it can be
 * without resolving it (some rule could still grant what it resolves to). The full check on the
 * resolved address follows at dial time and again before the stream is accepted.
 */
export function mayBePermitted(target: string, rules: AccessRules, localAddresses: readonly string[] = []): boolean {
  let parsed;
  try {
    parsed = parseTarget(target);
  } catch {
    return false;
  }
  const { host, port } = parsed;
  return parsed.family !== 0 ? rules.allowsResolved(host, host, port, localAddresses) : rules.mayResolve(host, port);
}

class LookupStop extends Error {
  constructor(
    readonly reason: 'timeout' | 'cancel',
    message: string,
  ) {
    super(message);
  }
}

function lookupBounded(resolver: Resolver, host: string, ms: number, signal?: AbortSignal): Promise<ReadonlyArray<{ address: string }>> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new LookupStop('cancel', 'cancelled'));
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(new LookupStop('cancel', 'cancelled'));
    };
    const timer = setTimeout(() => {
      done();
      reject(new LookupStop('timeout', `name lookup timed out after ${ms} ms`));
    }, ms);
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });
    resolver(host).then(
      (v) => {
        done();
        resolve(v);
      },
      (e: unknown) => {
        done();
        reject(e);
      },
    );
  });
}
