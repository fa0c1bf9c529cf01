/**
 * The pino factory: JSON lines to stdout (journald keeps them), a short human format on a TTY,
 * secret-looking fields redacted, and a destination that never throws or crashes the daemon.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import type { Writable } from 'node:stream';
import { EVENTS } from './events.js';
import { escapeDeep, escapeText } from './escape.js';
import { formatPrettyLine } from './pretty.js';
import { LIMITED_EVENTS, RefusalLimiter, refusalBucket } from './rate-limit.js';
import { safeDestination, type LineSink } from './safe-destination.js';

export type { Logger } from 'pino';
export type LogLevel = LevelWithSilent;

/** Written in place of a redacted value. */
export const REDACTED = '[redacted]';

/**
 * Field names that may hold key material or credentials, at the top level and one level down.
 * Logs carry fingerprints instead (STYLE.md #7); this is the safety net, not the policy.
 */
const SECRET_FIELDS = ['privateKey', 'psk', 'secret', 'password', 'chainingKey', 'sendKey', 'receiveKey', 'transportKey', 'proxy', 'authorization'] as const;

export const REDACT_PATHS: readonly string[] = [...SECRET_FIELDS, ...SECRET_FIELDS.map((f) => `*.${f}`)];

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Human-readable lines; default: when the destination is a TTY. */
  readonly pretty?: boolean;
  /** Default: process.stdout. */
  readonly destination?: Writable;
  /** Static fields on every line (e.g. { role: 'server' }). */
  readonly base?: Record<string, unknown>;
  /**
   * Sees the fields of every line written that carries an `event` (metrics count audit events
   * here). Lines below the log level are not written and not seen.
   */
  readonly onEvent?: (fields: Readonly<Record<string, unknown>>) => void;
}

const limiters = new WeakMap<Logger, RefusalLimiter>();

/** Creates the daemon's root logger. Children: `log.child({ peer })`. */
export function createLogger(options: LoggerOptions): Logger {
  const stream = options.destination ?? process.stdout;
  const pretty = options.pretty ?? (stream as Writable & { isTTY?: boolean }).isTTY === true;
  const safe = safeDestination(
    stream,
    (count) => `${JSON.stringify({ level: 40, time: Date.now(), event: EVENTS.logDropped, dropped: count, msg: 'log lines were dropped' })}\n`,
  );
  const sink: LineSink = pretty ? { write: (line) => safe.write(formatPrettyLine(line)) } : safe;
  let root: Logger | undefined;
  const limiter = new RefusalLimiter((fields, message) => root?.warn(fields, message));
  root = pino(
    {
      level: options.level,
      base: options.base ?? null,
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
      serializers: { err: serializeError },
      hooks: { logMethod: logMethodHook(limiter, options.onEvent) },
    },
    sink,
  );
  limiters.set(root, limiter);
  return root;
}

/** Writes the pending `refusals.suppressed` summaries of a root logger (call when stopping). */
export function flushLogSummaries(logger: Logger): void {
  limiters.get(logger)?.flush();
}

/** pino's error serializer, with peer-chosen text in the message and stack escaped. */
function serializeError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown;
  if (out === null || typeof out !== 'object') return typeof out === 'string' ? escapeText(out) : out;
  const record = out as Record<string, unknown>;
  for (const key of Object.keys(record)) record[key] = escapeDeep(record[key]);
  return record;
}

/**
 * Every line: strings escaped (src/log/escape.ts: a peer chose many of them), metrics see every
 * audit line, then refusal lines pass the rate limiter (src/log/rate-limit.ts).
 */
function logMethodHook(limiter: RefusalLimiter, onEvent: LoggerOptions['onEvent']) {
  return function logMethod(this: Logger, input: Parameters<Logger['info']>, method: (...a: unknown[]) => void): void {
    const args = (input as unknown[]).map((a) => escapeDeep(a));
    const first = args[0];
    if (first !== null && typeof first === 'object' && 'event' in first) {
      const fields = first as Record<string, unknown>;
      const limited = LIMITED_EVENTS.has(fields.event);
      const bindings = onEvent || limited ? this.bindings() : {};
      if (onEvent) {
        try {
          onEvent({ ...bindings, ...fields });
        } catch {
          // a metrics failure never stops logging
        }
      }
      const bucket = limited ? refusalBucket(fields, bindings) : undefined;
      if (bucket !== undefined && !limiter.admit(bucket, fields.reason ?? fields.how)) return;
    }
    method.apply(this, args);
  };
}
