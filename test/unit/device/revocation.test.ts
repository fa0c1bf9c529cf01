/**
 * Relayed opens still waiting for the device's answer when a reload revokes them (issue 13,
 * item 2): the user's open is refused `not-permitted`, the open toward the device is reset (the
 * device sees it cancelled), and a late answer from the device is never relayed.
 */
import { describe, expect, it } from 'vitest';
import { DeviceServer, refusal, type PeerSpec } from '../../helpers/device-harness.js';
import { waitUntil } from '../../helpers/wait.js';

const SPECS: PeerSpec[] = [
  { name: 'alice', devices: ['build1:ssh'] },
  { name: 'bob', devices: ['build1:ssh'] },
  { name: 'build1', kind: 'device' },
];

describe('DeviceRouter: a reload and the opens waiting for a device', () => {
  it('refuses a pending relay it revokes and cancels it toward the device; others wait on', async () => {
    const server = new DeviceServer(SPECS);
    const device = server.connect('build1'); // holds every relayed open without answering
    await server.announce(device, ['ssh']);
    const alice = server.connect('alice').agent.openStream('build1:ssh');
    const bob = server.connect('bob').agent.openStream('build1:ssh');
    alice.on('error', () => {});
    bob.on('error', () => {});
    await waitUntil(() => device.requests.length === 2, 'both relayed opens at the device', 5_000);
    const refused = refusal(alice);

    server.reload([{ name: 'alice', devices: [] }, ...SPECS.slice(1)]);
    const err = await refused;
    expect(err).toMatchObject({ code: 'ERR_MUX_STREAM_REFUSED', reason: 'not-permitted' });
    expect(server.find('stream.refused', { peer: 'alice', reason: 'not-permitted' })).toBeDefined();
    const [toAlice, toBob] = device.requests;
    await waitUntil(() => toAlice!.cancelled, "the device's open for alice cancelled", 5_000);
    expect(toBob!.cancelled).toBe(false);

    // bob is still permitted: the device's answer reaches him.
    const bobOpen = new Promise<void>((resolve) => bob.once('open', resolve));
    toBob!.accept();
    await bobOpen;
    expect(server.router.status()[0]!.streams).toBe(1);
  });
});
