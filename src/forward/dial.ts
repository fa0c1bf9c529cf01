/**
 * Dialing a target for a peer: parse and normalise, resolve on this side, check the RESOLVED
 * address against the peer's rules, and connect to exactly that address (no second lookup, so no
 * DNS rebinding past the list). Failures carry a stream reason the multiplexer sends back.
 */
import dns from 'node:dns';
import net from 'node:net';
import { ForwardError, type ForwardErrorCode } from '../errors.js';
import type { ReasonCode } from '../mux/reason.js';
import { addressBytes, type AccessRules } from '../policy/access-rules.js';
import { embeddedIPv4, normalizeHost, parseTarget } from '../policy/address.js';

export const DIAL_TIMEOUT_MS = 10_000;
/** Addresses a name may resolve to that are tried, in resolver order. */
const MAX_ADDRESSES_TRIED = 4;

/** A dial failure with the reason reported to the opener. */
export class DialError extends ForwardError {
  readonly reason: ReasonCode;
  constructor(code: ForwardErrorCode, reason: ReasonCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.reason = reason;
  }
}

export type Resolver = (host: string) => Promise<Array<{ address: string; family: number }>>;

const systemResolver: Resolver = (host) => dns.promises.lookup(host, { all: true, verbatim: true });

export interface DialOptions {
  readonly rules: AccessRules;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  readonly localAddresses?: readonly string[];
  readonly resolver?: Resolver;
}

export interface Dialed {
  readonly socket: net.Socket;
  /** The host as asked (normalised). */
  readonly host: string;
  /** The address connected to. */
  readonly address: string;
  readonly port: number;
}

function canonical(address: string): string {
  if (net.isIPv6(address)) return embeddedIPv4(address) ?? normalizeHost(address).host;
  return address;
}

function mapErrno(err: NodeJS.ErrnoException, target: string): DialError {
  switch (err.code) {
    case 'ECONNREFUSED':
      return new DialError('ERR_DIAL_REFUSED', 'connection-refused', `${target}: connection refused`, { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'ENETDOWN':
    case 'EHOSTDOWN':
      return new DialError('ERR_DIAL_UNREACHABLE', 'unreachable', `${target}: unreachable (${err.code})`, { cause: err });
    case 'ETIMEDOUT':
      return new DialError('ERR_DIAL_TIMEOUT', 'timeout', `${target}: timed out`, { cause: err });
    default:
      return new DialError('ERR_DIAL_UNREACHABLE', 'error', `${target}: ${err.code ?? err.message}`, { cause: err });
  }
}

/** Resolves, authorises and connects. Rejects with DialError. */
export async function dialTarget(text: string, options: DialOptions): Promise<Dialed> {
  let target;
  try {
    target = parseTarget(text);
  } catch (err) {
    throw new DialError('ERR_TARGET_INVALID', 'not-permitted', (err as Error).message, { cause: err });
  }
  const { host, port } = target;
  const shown = text.slice(0, 300);
  const denied = (): DialError => new DialError('ERR_POLICY_DENIED', 'not-permitted', `${shown}: not permitted for this peer`);
  const timeoutMs = options.timeoutMs ?? DIAL_TIMEOUT_MS;
  const local = options.localAddresses ?? [];
  // Refuse before resolving when no rule could grant this port or name: no lookups on a peer's whim.
  if (!options.rules.portMentioned(port)) throw denied();

  let addresses: string[];
  if (target.family !== 0) {
    addresses = [host];
  } else {
    let found;
    try {
      found = await withTimeout((options.resolver ?? systemResolver)(host), timeoutMs, options.signal);
    } catch (err) {
      if (err instanceof DialError) throw err;
      throw new DialError('ERR_DIAL_DNS', 'dns-failure', `${shown}: name not resolved (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
    addresses = found.map((a) => canonical(a.address)).filter((a) => addressBytes(a) !== undefined);
    if (addresses.length === 0) throw new DialError('ERR_DIAL_DNS', 'dns-failure', `${shown}: name has no addresses`);
  }
  const permitted = addresses.filter((a) => options.rules.allowsResolved(host, a, port, local)).slice(0, MAX_ADDRESSES_TRIED);
  if (permitted.length === 0) throw denied();

  let last: DialError | undefined;
  const deadline = Date.now() + timeoutMs;
  for (const address of permitted) {
    try {
      const socket = await connect(address, port, Math.max(1, deadline - Date.now()), options.signal, shown);
      return { socket, host, address, port };
    } catch (err) {
      last = err as DialError;
      if (last.reason === 'timeout' || options.signal?.aborted) break;
    }
  }
  throw last!;
}

function withTimeout<T>(promise: Promise<T>, ms: number, signal?: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new DialError('ERR_DIAL_TIMEOUT', 'timeout', `name lookup timed out after ${ms} ms`)), ms);
    timer.unref();
    const onAbort = (): void => reject(new DialError('ERR_DIAL_TIMEOUT', 'cancel', 'cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function connect(address: string, port: number, timeoutMs: number, signal: AbortSignal | undefined, shown: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DialError('ERR_DIAL_TIMEOUT', 'cancel', `${shown}: cancelled`));
      return;
    }
    const socket = net.connect({ host: address, port, noDelay: true, allowHalfOpen: true });
    const finish = (err?: DialError): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      if (err) {
        socket.on('error', () => {});
        socket.destroy();
        reject(err);
      } else {
        resolve(socket);
      }
    };
    const onConnect = (): void => finish();
    const onError = (e: NodeJS.ErrnoException): void => finish(mapErrno(e, shown));
    const onAbort = (): void => finish(new DialError('ERR_DIAL_TIMEOUT', 'cancel', `${shown}: cancelled`));
    const timer = setTimeout(() => finish(new DialError('ERR_DIAL_TIMEOUT', 'timeout', `${shown}: no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
