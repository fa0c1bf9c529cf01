/**
 * Dialing a target for a peer: authorise it (parse, normalise, resolve on this side, check the
 * RESOLVED addresses; src/policy/authorize.ts), then connect to exactly an address that passed
 * (no second lookup, so no DNS rebinding past the list). Failures carry the stream reason the
 * multiplexer sends back to the opener.
 */
import net from 'node:net';
import { ForwardError, type ForwardErrorCode } from '../errors.js';
import type { ReasonCode } from '../mux/reason.js';
import type { AccessRules } from '../policy/access-rules.js';
import { authorizeTarget, type Resolver } from '../policy/authorize.js';

export type { Resolver } from '../policy/authorize.js';

/** Default bound on resolving plus connecting, in milliseconds. */
export const DIAL_TIMEOUT_MS = 10_000;
/** Addresses of one name that are tried, in resolver order, before giving up. */
export const MAX_ADDRESSES_TRIED = 4;

/** A dial failure with the reason reported to the opener. */
export class DialError extends ForwardError {
  readonly reason: ReasonCode;
  constructor(code: ForwardErrorCode, reason: ReasonCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.reason = reason;
  }
}

export interface DialOptions {
  readonly rules: AccessRules;
  /** Resolving plus connecting must finish within this long (default DIAL_TIMEOUT_MS). */
  readonly timeoutMs?: number;
  /** Aborting cancels the dial (reason 'cancel'). */
  readonly signal?: AbortSignal;
  /** The daemon's own addresses: denied unless a rule names them exactly. */
  readonly localAddresses?: readonly string[];
  /** Replaces dns.lookup (tests). */
  readonly resolver?: Resolver;
  /** Replaces net.connect (tests: inject socket errors). */
  readonly connect?: (options: net.NetConnectOpts) => net.Socket;
}

export interface Dialed {
  readonly socket: net.Socket;
  /** The host as asked (normalised). */
  readonly host: string;
  /** The address connected to: one that passed the check. */
  readonly address: string;
  readonly port: number;
}

/** Maps a socket error to a DialError with the stream reason it stands for. */
export function mapDialErrno(err: NodeJS.ErrnoException, target: string): DialError {
  switch (err.code) {
    case 'ECONNREFUSED':
      return new DialError('ERR_DIAL_REFUSED', 'connection-refused', `${target}: connection refused`, { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'ENETDOWN':
    case 'EHOSTDOWN':
      return new DialError('ERR_DIAL_UNREACHABLE', 'unreachable', `${target}: unreachable (${err.code})`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new DialError('ERR_DIAL_DNS', 'dns-failure', `${target}: name not resolved (${err.code})`, { cause: err });
    case 'ETIMEDOUT':
      return new DialError('ERR_DIAL_TIMEOUT', 'timeout', `${target}: timed out`, { cause: err });
    default:
      return new DialError('ERR_DIAL_UNREACHABLE', 'error', `${target}: ${err.code ?? err.message}`, { cause: err });
  }
}

/** Authorises and connects. Rejects with DialError (its `reason` is for the stream refusal). */
export async function dialTarget(target: string, options: DialOptions): Promise<Dialed> {
  const shown = String(target).slice(0, 300);
  const timeoutMs = options.timeoutMs ?? DIAL_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const verdict = await authorizeTarget(target, {
    rules: options.rules,
    timeoutMs,
    ...(options.resolver ? { resolver: options.resolver } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.localAddresses ? { localAddresses: options.localAddresses } : {}),
  });
  if (!verdict.allowed) throw new DialError(verdict.code, verdict.reason, verdict.message);

  let last: DialError | undefined;
  for (const address of verdict.addresses.slice(0, MAX_ADDRESSES_TRIED)) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      const socket = await connectOnce(address, verdict.port, left, options, shown);
      return { socket, host: verdict.host, address, port: verdict.port };
    } catch (err) {
      last = err as DialError;
      if (last.reason === 'timeout' || last.reason === 'cancel') break;
    }
  }
  throw last ?? new DialError('ERR_DIAL_TIMEOUT', 'timeout', `${shown}: no answer within ${timeoutMs} ms`);
}

function connectOnce(address: string, port: number, timeoutMs: number, options: DialOptions, shown: string): Promise<net.Socket> {
  const { signal } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DialError('ERR_DIAL_TIMEOUT', 'cancel', `${shown}: cancelled`));
      return;
    }
    const socket = (options.connect ?? net.connect)({ host: address, port, noDelay: true, allowHalfOpen: true });
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
    const onError = (e: NodeJS.ErrnoException): void => finish(mapDialErrno(e, shown));
    const onAbort = (): void => finish(new DialError('ERR_DIAL_TIMEOUT', 'cancel', `${shown}: cancelled`));
    const timer = setTimeout(() => finish(new DialError('ERR_DIAL_TIMEOUT', 'timeout', `${shown}: no answer within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
