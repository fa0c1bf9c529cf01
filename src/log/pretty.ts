/**
 * A small human-readable rendering of pino's JSON lines for a terminal:
 * `12:00:01.234 INFO  stream opened event=stream.open peer=alice target=db:22`.
 * Used only when stdout is a TTY; journald and files get the JSON lines unchanged.
 */
import { escapeText } from './escape.js';

const LEVELS: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};

/** Fields shown in the line's fixed part or not at all. */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/**
 * A value as the terminal shows it: escaped (src/log/escape.ts), and quoted unless it is one
 * plain word, so a value can never pose as another `key=value` or as a second line.
 */
function render(value: unknown): string {
  if (typeof value === 'string') {
    const text = escapeText(value);
    return /^[^\s"=]+$/.test(text) ? text : `"${text.replace(/"/g, '\\"')}"`;
  }
  return escapeText(JSON.stringify(value) ?? String(value));
}

/** A string as it is, anything else as JSON (an object field must not print as `[object Object]`). */
function plain(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
}

function asIs(line: string): string {
  return line.endsWith('\n') ? `${escapeText(line.slice(0, -1))}\n` : escapeText(line);
}

/** Formats one JSON log line; a line that is not JSON is returned escaped, otherwise unchanged. */
export function formatPrettyLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return asIs(line);
    record = parsed as Record<string, unknown>;
  } catch {
    return asIs(line);
  }
  const time = typeof record.time === 'number' ? new Date(record.time).toISOString().slice(11, 23) : '';
  const level = typeof record.level === 'number' ? (LEVELS[record.level] ?? String(record.level)) : '';
  const parts = [time, level];
  if (typeof record.msg === 'string') parts.push(escapeText(record.msg));
  for (const [key, value] of Object.entries(record)) {
    if (HIDDEN.has(key) || value === undefined) continue;
    if (key === 'err' && typeof value === 'object' && value !== null) {
      const err = value as { type?: unknown; message?: unknown; code?: unknown };
      parts.push(`err=${render(`${plain(err.type ?? 'Error')}${err.code ? ` ${plain(err.code)}` : ''}: ${plain(err.message ?? '')}`)}`);
      continue;
    }
    parts.push(`${escapeText(key)}=${render(value)}`);
  }
  return `${parts.filter((p) => p !== '').join(' ')}\n`;
}
