/**
 * The one escape for text that may reach a terminal or a log (issue 13 item 6). A peer chooses
 * OPEN_FAIL and GOAWAY messages, close-record texts, target names and device refusal texts; any
 * of them may carry `ESC ] 0 ; title BEL` (a terminal title), `ESC [ 2 K` (erase the line), a
 * newline that forges a log line, or U+202E that reverses what follows. Every such character is
 * written as visible text instead: C0 controls, DEL and C1 controls as `\xHH`, Unicode format
 * characters (bidi embeddings, overrides and isolates U+202A-202E and U+2066-2069, marks, zero
 * widths, BOM, tags), line and paragraph separators and lone surrogates as `\uHHHH` or `\u{H...}`.
 * Printable text, including non-ASCII letters, passes unchanged.
 */

/** What must never reach a terminal or a log raw. */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const UNSAFE_GLOBAL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

function hex(cp: number, width: number): string {
  return cp.toString(16).padStart(width, '0');
}

function escapeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  if (cp < 0x100) return `\\x${hex(cp, 2)}`;
  if (cp < 0x10000) return `\\u${hex(cp, 4)}`;
  return `\\u{${hex(cp, 1)}}`;
}

/** True when `text` holds a character escapeText would rewrite. */
export function needsEscape(text: string): boolean {
  return UNSAFE.test(text);
}

/** `text` with every control, format and separator character written as an escape. */
export function escapeText(text: string): string {
  return UNSAFE.test(text) ? text.replace(UNSAFE_GLOBAL, escapeChar) : text;
}

/**
 * A copy of `value` with every string in it escaped (plain objects and arrays, to a small depth);
 * `value` itself when nothing needed it. Other objects (Errors, Buffers, Dates) are returned as
 * they are: their serializers escape them.
 */
export function escapeDeep<T>(value: T, depth = 4): T {
  if (typeof value === 'string') return escapeText(value) as T;
  if (depth <= 0 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((item, i) => {
      const next = escapeDeep(item, depth - 1);
      if (next !== item) (out ??= [...value])[i] = next;
    });
    return (out ?? value) as T;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  let out: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const next = escapeDeep(item, depth - 1);
    const safeKey = escapeText(key);
    if (next !== item || safeKey !== key) {
      out ??= { ...(value as Record<string, unknown>) };
      if (safeKey !== key) delete out[key];
      out[safeKey] = next;
    }
  }
  return (out ?? value) as T;
}

/**
 * JSON text (from JSON.stringify) with the characters a terminal would act on written as JSON
 * `\uXXXX` escapes: the same data for a parser, nothing raw for a terminal (JSON.stringify leaves
 * DEL, C1 controls and format characters such as U+202E as they are).
 */
export function escapeJsonText(json: string): string {
  if (!UNSAFE.test(json)) return json;
  return json.replace(UNSAFE_GLOBAL, (ch) => {
    // Raw tabs and newlines in JSON text are indentation (inside strings JSON.stringify escaped them).
    if (ch === '\n' || ch === '\r' || ch === '\t') return ch;
    let out = '';
    for (let i = 0; i < ch.length; i++) out += `\\u${hex(ch.charCodeAt(i), 4)}`;
    return out;
  });
}
