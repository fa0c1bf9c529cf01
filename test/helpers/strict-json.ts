/**
 * A strict JSON parser for log lines. `JSON.parse` silently keeps the last of two equal keys;
 * log pipelines such as Elasticsearch reject such a line, so the tests must too. This parser
 * follows RFC 8259 and throws on a duplicate key (at any depth), on trailing text and on anything
 * JSON.parse would refuse. Values are decoded by JSON.parse itself, token by token.
 */

export class StrictJsonError extends Error {}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const LITERAL = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null/y;

/** Parses one JSON text; throws StrictJsonError on a duplicate key or a syntax error. */
export function parseStrictJson(text: string): unknown {
  let i = 0;
  const fail = (why: string): never => {
    throw new StrictJsonError(`${why} at offset ${i} in ${text.slice(0, 200)}`);
  };
  const skip = (): void => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  const stringToken = (): string => {
    const start = i;
    let escaped = false;
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail('raw control character in a string');
      if (c === 0x5c) escaped = true;
      i += c === 0x5c ? 2 : 1;
    }
    i++;
    if (!escaped) return text.slice(start + 1, i - 1);
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      return fail('bad string escape');
    }
  };
  const value = (depth: number): unknown => {
    if (depth > 64) fail('nested too deeply');
    skip();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: Record<string, unknown> = {};
      const keys = new Set<string>();
      skip();
      if (text[i] === '}') {
        i++;
        return out;
      }
      for (;;) {
        skip();
        if (text[i] !== '"') fail('expected a key');
        const key = stringToken();
        if (keys.has(key)) fail(`duplicate key ${JSON.stringify(key)}`);
        keys.add(key);
        skip();
        if (text[i] !== ':') fail('expected ":"');
        i++;
        const v = value(depth + 1);
        if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
        else out[key] = v;
        skip();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return out;
        }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const out: unknown[] = [];
      skip();
      if (text[i] === ']') {
        i++;
        return out;
      }
      for (;;) {
        out.push(value(depth + 1));
        skip();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return out;
        }
        fail('expected "," or "]"');
      }
    }
    if (c === '"') return stringToken();
    LITERAL.lastIndex = i;
    const m = LITERAL.exec(text);
    if (m === null) return fail('unexpected token');
    i += m[0].length;
    return m[0] === 'true' ? true : m[0] === 'false' ? false : m[0] === 'null' ? null : Number(m[0]);
  };
  const out = value(0);
  skip();
  if (i !== text.length) fail('trailing text');
  return out;
}

/** Parses one JSON log line (an object); throws on duplicate keys. */
export function parseLogLine(line: string): Record<string, unknown> {
  const parsed = parseStrictJson(line);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new StrictJsonError(`not a JSON object: ${line.slice(0, 200)}`);
  return parsed as Record<string, unknown>;
}
