import { describe, expect, it } from 'vitest';
import { decodeBase64Url, encodeBase64Url } from '../../../src/session/base64url.js';
import {
  decodeInitiationPayload,
  decodeResponsePayload,
  encodeInitiationPayload,
  encodeResponsePayload,
  INITIATION_PAYLOAD_BYTES,
  JOIN_INITIATION_PAYLOAD_BYTES,
} from '../../../src/session/handshake-payload.js';
import { decodeCloseBody, encodeCloseBody, parseRecordHeader, parseRecordType, RecordType, recordTypeName } from '../../../src/session/record.js';
import { compareTai64n, tai64nNow } from '../../../src/session/tai64n.js';
import { MAX_DATA_BYTES, MAX_RECORD_BYTES, WIRE, rekeyPrologue, wireProtocol } from '../../../src/session/wire.js';
import { bareResponse } from '../../../src/transport/http-responses.js';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

describe('base64url', () => {
  it('round-trips and rejects padding, other alphabets, non-canonical forms and oversize', () => {
    const bytes = Uint8Array.from({ length: 110 }, (_, i) => i * 7);
    expect([...decodeBase64Url(encodeBase64Url(bytes), 1024, 'x')]).toEqual([...bytes]);
    expect(code(() => decodeBase64Url('AAA=', 1024, 'x'))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(code(() => decodeBase64Url('AA+/', 1024, 'x'))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(code(() => decodeBase64Url('AAAAA', 1024, 'x'))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(code(() => decodeBase64Url('AB', 1024, 'x'))).toBe('ERR_SESSION_BAD_MESSAGE'); // 'AA' is canonical
    expect(code(() => decodeBase64Url('A'.repeat(2000), 1024, 'x'))).toBe('ERR_SESSION_BAD_MESSAGE');
  });
});

describe('handshake payloads', () => {
  it('encode and decode message 1 and 2 payloads exactly', () => {
    const ts = tai64nNow();
    const p1 = encodeInitiationPayload(ts);
    expect(p1.length).toBe(INITIATION_PAYLOAD_BYTES);
    expect([...decodeInitiationPayload(p1).timestamp]).toEqual([...ts]);
    expect(() => decodeResponsePayload(encodeResponsePayload())).not.toThrow();
  });
  it('reject wrong lengths, versions and reserved flags', () => {
    const p1 = encodeInitiationPayload(tai64nNow());
    expect(code(() => decodeInitiationPayload(p1.subarray(1)))).toBe('ERR_SESSION_BAD_MESSAGE');
    const v2 = p1.slice();
    v2[12] = 2;
    expect(code(() => decodeInitiationPayload(v2))).toBe('ERR_SESSION_PROTOCOL_VERSION');
    const flags = p1.slice();
    flags[13] = 1;
    expect(code(() => decodeInitiationPayload(flags))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(code(() => decodeResponsePayload(Uint8Array.of(1, 0, 0)))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(code(() => decodeResponsePayload(Uint8Array.of(1, 4)))).toBe('ERR_SESSION_BAD_MESSAGE');
  });
  it('carry the invite id of a join (flag 0x01) in exactly 16 more bytes', () => {
    const ts = tai64nNow();
    const id = Uint8Array.from({ length: 16 }, (_, i) => 200 - i);
    const p1 = encodeInitiationPayload(ts, id);
    expect(p1.length).toBe(JOIN_INITIATION_PAYLOAD_BYTES);
    expect(p1.length).toBe(INITIATION_PAYLOAD_BYTES + 16);
    expect(p1[13]).toBe(0x01);
    const decoded = decodeInitiationPayload(p1);
    expect([...decoded.joinId!]).toEqual([...id]);
    expect([...decoded.timestamp]).toEqual([...ts]);
    expect(decodeInitiationPayload(encodeInitiationPayload(ts)).joinId).toBeUndefined();
    // The flag without the id, the id without the flag, a short id, other flag bits: all refused.
    expect(code(() => decodeInitiationPayload(p1.subarray(0, INITIATION_PAYLOAD_BYTES)))).toBe('ERR_SESSION_BAD_MESSAGE');
    const noFlag = p1.slice();
    noFlag[13] = 0;
    expect(code(() => decodeInitiationPayload(noFlag))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(code(() => decodeInitiationPayload(p1.subarray(0, p1.length - 1)))).toBe('ERR_SESSION_BAD_MESSAGE');
    const more = p1.slice();
    more[13] = 0x03;
    expect(code(() => decodeInitiationPayload(more))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(() => encodeInitiationPayload(ts, new Uint8Array(15))).toThrow(RangeError);
  });
});

describe('records', () => {
  it('parse the header and type strictly', () => {
    expect(parseRecordHeader(0)).toBe(0);
    expect(parseRecordHeader(1)).toBe(1);
    for (const b of [2, 0x80, 0xff]) expect(code(() => parseRecordHeader(b))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(parseRecordType(RecordType.close)).toBe(RecordType.close);
    expect(code(() => parseRecordType(6))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(code(() => parseRecordType(undefined))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(recordTypeName(RecordType.rekeyInit)).toBe('rekey-init');
  });
  it('encode close bodies with a bounded message', () => {
    expect(decodeCloseBody(encodeCloseBody('replaced', 'newer session'))).toEqual({ code: 'replaced', message: 'newer session' });
    expect(decodeCloseBody(encodeCloseBody('normal', undefined))).toEqual({ code: 'normal' });
    expect(encodeCloseBody('timeout', 'x'.repeat(1000)).length).toBe(241);
    expect(code(() => decodeCloseBody(Uint8Array.of(99)))).toBe('ERR_SESSION_BAD_MESSAGE');
    expect(code(() => decodeCloseBody(new Uint8Array(0)))).toBe('ERR_SESSION_BAD_MESSAGE');
  });
  it('size limits follow the Noise maximum', () => {
    expect(MAX_RECORD_BYTES).toBe(65_536);
    expect(MAX_DATA_BYTES).toBe(65_535 - 16 - 1);
  });
});

describe('wire protocol', () => {
  it('binds the version into subprotocol and prologue; rekey prologue differs and binds the hash', () => {
    expect(WIRE.subprotocol).toBe('twoway.v1');
    const v2 = wireProtocol(2);
    expect(Buffer.from(v2.prologue).toString()).toContain('twoway.v2');
    const a = rekeyPrologue(WIRE, new Uint8Array(32).fill(1));
    const b = rekeyPrologue(WIRE, new Uint8Array(32).fill(2));
    expect(Buffer.compare(Buffer.from(a), Buffer.from(b))).not.toBe(0);
    expect(Buffer.from(a).subarray(0, WIRE.prologue.length).equals(Buffer.from(WIRE.prologue))).toBe(false);
  });
});

describe('tai64n', () => {
  it('orders like time and hides sub-16 ms precision', () => {
    const t = 1_700_000_000_000;
    expect(compareTai64n(tai64nNow(t), tai64nNow(t + 20))).toBeLessThan(0);
    expect(compareTai64n(tai64nNow(t + 1000), tai64nNow(t))).toBeGreaterThan(0);
    expect(compareTai64n(tai64nNow(t), tai64nNow(t + 1))).toBe(0);
    expect(tai64nNow(t)[0]).toBe(0x40);
  });
});

describe('bare HTTP responses', () => {
  it('carry no banner and refuse header injection', () => {
    expect(bareResponse(404)).toBe('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    expect(() => bareResponse(401, { 'X-A': 'b\r\nSet-Cookie: x' })).toThrow(TypeError);
  });
});
