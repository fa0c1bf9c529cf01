import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { escapeDeep, escapeJsonText, escapeText } from '../../../src/log/escape.js';
import { createLogger } from '../../../src/log/logger.js';
import { formatPrettyLine } from '../../../src/log/pretty.js';

const HOSTILE = '\u001b]0;title\u0007\u001b[2K\r\nx\u202eabc\u202c\u2066\u2069\u009b\u007f\u200b\ufeff\u2028\u{e0041}';
/** Anything a terminal acts on, but the newline that ends a line. */
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[\u{e0000}-\u{e007f}]/u;

function capture(): Writable & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return Object.assign(w, { text: () => chunks.join('') });
}

describe('escapeText', () => {
  it('writes C0, DEL, C1, bidi, zero-width, separators and tags as visible escapes', () => {
    expect(escapeText(HOSTILE)).toBe('\\x1b]0;title\\x07\\x1b[2K\\x0d\\x0ax\\u202eabc\\u202c\\u2066\\u2069\\x9b\\x7f\\u200b\\ufeff\\u2028\\u{e0041}');
    expect(escapeText(HOSTILE)).not.toMatch(RAW);
  });

  it('leaves printable text, including non-ASCII letters, as it is', () => {
    for (const s of ['stream to db.corp.example:22 refused', 'Zürich 東京 ☃ emoji 😀', '']) expect(escapeText(s)).toBe(s);
  });

  it('escapes a lone surrogate', () => {
    expect(escapeText('a\ud800b')).toBe('a\\ud800b');
  });

  it('escapeDeep copies only what changes and never mutates its input', () => {
    const input = { a: 'ok', b: ['x', '\u001b'], c: { d: '\u202e' }, n: 1 };
    const out = escapeDeep(input);
    expect(out).toEqual({ a: 'ok', b: ['x', '\\x1b'], c: { d: '\\u202e' }, n: 1 });
    expect(input.b[1]).toBe('\u001b');
    const clean = { a: 'ok' };
    expect(escapeDeep(clean)).toBe(clean);
  });

  it('escapeJsonText keeps the JSON valid and the data equal, with nothing raw', () => {
    const value = { s: HOSTILE, list: ['\u202e'] };
    const text = escapeJsonText(JSON.stringify(value, null, 2));
    expect(text).not.toMatch(RAW);
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe('log lines carry no raw control or format character', () => {
  it('JSON lines: fields, nested fields, the message and err are escaped', () => {
    const out = capture();
    const log = createLogger({ level: 'info', destination: out, pretty: false });
    log.child({ peer: 'alice' }).warn({ event: 'stream.refused', detail: HOSTILE, list: [HOSTILE], err: new Error(HOSTILE) }, `refused: ${HOSTILE}`);
    const text = out.text();
    expect(text.trimEnd().split('\n')).toHaveLength(1);
    expect(text).not.toMatch(RAW);
    const line = JSON.parse(text) as Record<string, unknown>;
    expect(line.detail).toBe(escapeText(HOSTILE));
    expect(line.msg).toBe(`refused: ${escapeText(HOSTILE)}`);
    expect((line.err as { message: string }).message).toBe(escapeText(HOSTILE));
  });

  it('the terminal format quotes and escapes values, keys and the message', () => {
    const line = JSON.stringify({ level: 40, time: 0, msg: `m ${HOSTILE}`, detail: HOSTILE, [`k\u001b`]: 'a=b', plain: 'word' });
    const pretty = formatPrettyLine(line);
    expect(pretty).not.toMatch(RAW);
    expect(pretty.trimEnd().split('\n')).toHaveLength(1);
    expect(pretty).toContain('detail=\\x1b]0;title');
    expect(formatPrettyLine(JSON.stringify({ level: 30, time: 0, msg: 'm', detail: 'two words=x' }))).toContain('detail="two words=x"');
    expect(pretty).toContain('k\\x1b="a=b"');
    expect(pretty).toContain('plain=word');
  });

  it('the terminal format escapes a line that is not JSON', () => {
    expect(formatPrettyLine(`not json ${HOSTILE}\n`)).not.toMatch(RAW);
  });

  it('the terminal format shows an err field that is not a string as JSON, not [object Object]', () => {
    const line = formatPrettyLine(JSON.stringify({ level: 50, time: 0, msg: 'm', err: { type: 'Error', code: { x: 1 }, message: { why: 'no' } } }));
    expect(line).not.toContain('[object Object]');
    expect(line).toContain('err="Error {\\"x\\":1}: {\\"why\\":\\"no\\"}"');
  });
});
