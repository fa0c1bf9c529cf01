import { describe, expect, it } from 'vitest';
import {
  MAX_ANNOUNCEMENT_BYTES,
  decodeAnnouncement,
  decodeRelayedTarget,
  encodeAnnouncement,
  encodeRelayedTarget,
  parseDeviceTarget,
} from '../../../src/device/target.js';
import { isWireTarget } from '../../../src/mux/frame.js';

const KEY = Buffer.alloc(32, 7).toString('base64');

describe('device targets', () => {
  it.each([
    ['build1:ssh', { device: 'build1', service: 'ssh' }],
    ['ssh.build1.twoway:22', { device: 'build1', service: 'ssh' }],
    ['postgres.db.branch-1.twoway:0', { device: 'db.branch-1', service: 'postgres' }],
    ['SSH.build1.TWOWAY:22', { device: 'build1', service: 'SSH' }],
    // Issue 13 item 9: the absolute spelling, one trailing dot, any case, is the same device name.
    ['ssh.build1.twoway.:22', { device: 'build1', service: 'ssh' }],
    ['ssh.build1.TwoWay.:0', { device: 'build1', service: 'ssh' }],
    ['postgres.db.branch-1.twoway.:5432', { device: 'db.branch-1', service: 'postgres' }],
  ])('parses %s', (text, expected) => {
    expect(parseDeviceTarget(text)).toEqual(expected);
  });

  it.each([
    '10.0.0.1:22',
    'db.corp.example:5432',
    'db.corp.example.:5432',
    '[::1]:22',
    'twoway:22',
    'twoway.:22',
    'example.twoway.com:443',
    'example.twoway.com.:443',
  ])('leaves %s to the ordinary policy', (text) => {
    expect(parseDeviceTarget(text)).toBeUndefined();
  });

  it.each([
    'build 1:ssh',
    'build1:s.sh',
    'build1:1ssh',
    '.twoway:22',
    'ssh.twoway:22',
    'bad$.build1.twoway:22',
    'ssh.twoway.:22',
    '.twoway.:22',
    'ssh.build1.twoway..:22',
    'ssh.build1.TWOWAY...:22',
  ])('refuses the malformed reserved form %s', (text) => {
    expect(() => parseDeviceTarget(text)).toThrow(expect.objectContaining({ code: 'ERR_DEVICE_TARGET' }));
  });
});

describe('relayed targets', () => {
  it('round-trips and fits an OPEN frame', () => {
    const open = { service: 'ssh', mode: 'e2e' as const, user: 'alice', userKey: KEY };
    const text = encodeRelayedTarget(open);
    expect(isWireTarget(text)).toBe(true);
    expect(decodeRelayedTarget(text)).toEqual(open);
    const reverse = { service: 'ssh', mode: 'reverse' as const, user: 'reverse', userKey: '' };
    expect(decodeRelayedTarget(encodeRelayedTarget(reverse))).toEqual(reverse);
  });

  it.each([
    '127.0.0.1:22',
    `svc=ssh;mode=e2e;user=alice;key=`,
    `svc=ssh;mode=reverse;user=x;key=${KEY}`,
    `svc=ssh;mode=other;user=alice;key=${KEY}`,
    `svc=s.sh;mode=e2e;user=alice;key=${KEY}`,
    `svc=ssh;mode=e2e;user=al;ice;key=${KEY}`,
  ])('refuses %s', (text) => {
    expect(decodeRelayedTarget(text)).toBeUndefined();
  });
});

describe('announcements', () => {
  it('round-trips, without duplicates', () => {
    expect(decodeAnnouncement(encodeAnnouncement(['ssh', 'web', 'ssh']))).toEqual(['ssh', 'web']);
  });

  it.each([
    ['not JSON', Buffer.from('{')],
    ['no list', Buffer.from('{"services": "ssh"}')],
    ['a bad name', Buffer.from('{"services": ["s s"]}')],
    ['too large', Buffer.alloc(MAX_ANNOUNCEMENT_BYTES + 1, 0x20)],
  ])('refuses %s', (_what, bytes) => {
    expect(() => decodeAnnouncement(bytes)).toThrow(expect.objectContaining({ code: 'ERR_DEVICE_TARGET' }));
  });
});
