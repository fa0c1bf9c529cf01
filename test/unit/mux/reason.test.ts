import { describe, expect, it } from 'vitest';
import { MuxStreamError, REASON_WIRE, reasonOfError, toReasonCode, type ReasonCode } from '../../../src/mux/reason.js';

describe('reason codes from outside the protocol', () => {
  it('toReasonCode keeps every reason code and turns anything else into error', () => {
    for (const code of Object.keys(REASON_WIRE) as ReasonCode[]) expect(toReasonCode(code)).toBe(code);
    for (const other of ['', 'toString', '__proto__', 'Timeout', 'connection refused', 5, null, undefined, {}])
      expect(toReasonCode(other), JSON.stringify(other) ?? 'undefined').toBe('error');
  });

  it('reasonOfError reads the reason field of an error, or gives error', () => {
    expect(reasonOfError(new MuxStreamError('ERR_MUX_STREAM_REFUSED', 'no', 'not-permitted'))).toBe('not-permitted');
    expect(reasonOfError(Object.assign(new Error('dial'), { reason: 'timeout' }))).toBe('timeout');
    expect(reasonOfError(Object.assign(new Error('odd'), { reason: 'weird' }))).toBe('error');
    expect(reasonOfError(new Error('plain'))).toBe('error');
    expect(reasonOfError(undefined)).toBe('error');
    expect(reasonOfError('text')).toBe('error');
  });
});
