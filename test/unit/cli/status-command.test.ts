import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../../src/cli/status-command.js';
import type { ClientStatus } from '../../../src/client/client-daemon.js';
import { escapeJsonText } from '../../../src/log/escape.js';

const HOSTILE = 'server speaks \u001b]0;pwned\u0007\u001b[2K\u009b31m\u202eevil';
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/;

const status: ClientStatus = {
  role: 'client',
  fingerprint: 'fp',
  server: 'ws://127.0.0.1:1/twoway',
  state: 'connecting',
  since: null,
  lastError: HOSTILE,
  sessionsOpened: 0,
  session: null,
  services: [],
  listeners: [{ kind: 'forward', listen: '127.0.0.1:2222', target: 'db:22', up: true }],
  verification: { method: 'oidc', identity: HOSTILE, expiresAt: '2030-01-01T00:00:00.000Z' },
};

describe('twoway status output', () => {
  it('escapes peer-chosen text in the text form', () => {
    const text = formatStatus(status);
    expect(text).not.toMatch(RAW);
    expect(text).toContain('last error: server speaks \\x1b]0;pwned\\x07\\x1b[2K\\x9b31m\\u202eevil');
    expect(text).toContain('verified: server speaks \\x1b]0;pwned');
  });

  it('escapes it in the JSON form, which still parses to the same data', () => {
    const json = escapeJsonText(JSON.stringify(status, null, 2));
    expect(json).not.toMatch(RAW);
    expect(JSON.parse(json)).toEqual(status);
  });
});
