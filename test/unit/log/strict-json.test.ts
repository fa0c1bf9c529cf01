/** The test helper that reads daemon log lines: it must reject what JSON.parse silently accepts. */
import { describe, expect, it } from 'vitest';
import { StrictJsonError, parseLogLine, parseStrictJson } from '../../helpers/strict-json.js';

describe('parseStrictJson', () => {
  it('rejects a duplicate key at the top level and nested', () => {
    expect(JSON.parse('{"a":1,"a":2}')).toEqual({ a: 2 }); // what it guards against
    expect(() => parseStrictJson('{"a":1,"a":2}')).toThrow(/duplicate key "a"/);
    expect(() => parseStrictJson('{"x":{"b":1,"c":[{"d":1,"d":1}]}}')).toThrow(/duplicate key "d"/);
    expect(() => parseStrictJson('{"a\\u0062":1,"ab":2}')).toThrow(/duplicate key "ab"/);
  });

  it('agrees with JSON.parse on valid documents', () => {
    const docs = [
      '{}',
      '[]',
      '{"a":[1,-2.5e3,true,false,null,"x\\n\\"y\\u00e9"],"b":{"c":{}}}',
      ' { "s" : "\\ud83d\\ude00" } ',
      JSON.stringify({ level: 30, time: 1, msg: 'x', err: { type: 'Error', stack: 'a\nb' }, list: [{ a: 1 }, { a: 2 }] }),
      '{"__proto__":1}',
    ];
    for (const d of docs) expect(parseStrictJson(d)).toEqual(JSON.parse(d));
  });

  it('rejects what JSON.parse rejects', () => {
    for (const bad of ['{', '{"a":}', '{"a":1,}', '[1,]', '{"a":1} x', "{'a':1}", '{"a":01}', '{"a":"\u0001"}', '{"a":tru}', '']) {
      expect(() => JSON.parse(bad)).toThrow();
      expect(() => parseStrictJson(bad), bad).toThrow(StrictJsonError);
    }
  });

  it('parseLogLine wants an object', () => {
    expect(() => parseLogLine('[1]')).toThrow(/not a JSON object/);
    expect(parseLogLine('{"event":"listen"}')).toEqual({ event: 'listen' });
  });
});
