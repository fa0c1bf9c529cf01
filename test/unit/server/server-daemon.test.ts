/**
 * The server daemon in one process (test/helpers/daemon-pair.ts), each case over the in-memory
 * channel pair with the real handshake and over a real WebSocket on loopback: dispatch of a
 * stream request, reload diffing, drain on shutdown, the dial queue with a cancelled entry.
 */
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../../src/crypto/keys.js';
import { ANNOUNCE_TARGET, encodeAnnouncement } from '../../../src/device/target.js';
import { daemonPairFixture, echoed, startDaemonPair, TRANSPORTS } from '../../helpers/daemon-pair.js';
import { startSlowTarget, type SlowTarget } from '../../helpers/slow-target.js';
import { waitUntil } from '../../helpers/wait.js';

const fixture = daemonPairFixture();

type Failure = Error & { code?: string; reason?: string };

/** Resolves with the error the stream fails with. */
function failure(stream: Duplex): Promise<Failure> {
  return new Promise((resolve) => stream.once('error', resolve));
}

/** Resolves once the stream ended or closed, with how. */
function ended(stream: Duplex): Promise<'end' | Failure> {
  return new Promise((resolve) => {
    stream.once('end', () => resolve('end'));
    stream.once('error', resolve);
  });
}

const ECHO_RULE = (): string => `127.0.0.1:${fixture.echoPort}`;

describe.each(TRANSPORTS)('ServerDaemon $name', ({ realSocket }) => {
  it('dispatch: a plain target reaches the dial, a device target the device router, an announcement the router', async () => {
    const nasKey = generateKeyPair();
    fixture.pair = await startDaemonPair({
      realSocket,
      peers: [
        { name: 'alice', allow: [ECHO_RULE()], devices: ['nas:*'] },
        { name: 'nas', kind: 'device', key: nasKey },
      ],
      // The user pins the device's key: device targets are end to end.
      client: { devicePins: new Map([['nas', nasKey.publicKey]]) },
    });
    // Plain target: dialled, piped and logged as a stream of the server's own.
    const plain = fixture.pair.client.openStream(`127.0.0.1:${fixture.echoPort}`);
    expect(await echoed(plain, 'ping')).toBe('ping');
    expect(fixture.pair.events('server', 'stream.open').map((l) => l.target)).toEqual([`127.0.0.1:${fixture.echoPort}`]);
    plain.end();

    // Device target while the device is away: the router answers (device-offline), no dial.
    const early = fixture.pair.client.openStream('nas:files');
    const offline = await failure(early);
    expect(offline.reason).toBe('device-offline');
    expect(fixture.pair.events('server', 'stream.refused').find((l) => l.device === 'nas')?.reason).toBe('device-offline');

    // The device's session is registered by the router; its services decide the next answer.
    await fixture.pair.addClient(1);
    expect(fixture.pair.server.status().devices.map((d) => d.name)).toEqual(['nas']);
    const noService = await failure(fixture.pair.client.openStream('nas:files'));
    expect(noService.reason).toBe('unreachable');
    expect(noService.message).toContain('has no service files');
    // An announcement reaches the router, which takes it from devices only.
    const announce = fixture.pair.client.openStream(ANNOUNCE_TARGET);
    const notDevice = failure(announce);
    announce.end(encodeAnnouncement(['files']));
    expect((await notDevice).message).toContain('is for devices');
    // No dial was made for any of them.
    expect(fixture.pair.events('server', 'stream.open')).toHaveLength(1);
  });

  it('reload: a removed key loses its session, a narrowed grant resets its stream, unchanged sessions and streams stay, an added key gets in', async () => {
    fixture.pair = await startDaemonPair({
      realSocket,
      peers: [
        { name: 'alice', allow: [ECHO_RULE()] },
        { name: 'bob', allow: [ECHO_RULE()] },
        { name: 'dave', allow: [ECHO_RULE()] },
        { name: 'carol', allow: [ECHO_RULE()] },
      ],
    });
    const [alice, bob, dave, carol] = fixture.pair.peers as [
      (typeof fixture.pair.peers)[0],
      (typeof fixture.pair.peers)[0],
      (typeof fixture.pair.peers)[0],
      (typeof fixture.pair.peers)[0],
    ];
    const bobClient = await fixture.pair.addClient(1);
    const daveClient = await fixture.pair.addClient(2);
    // carol is not on the allowlist yet.
    fixture.pair.server.reload(fixture.pair.allowlist([alice, bob, dave]));
    const aliceStream = fixture.pair.client.openStream(`127.0.0.1:${fixture.echoPort}`);
    expect(await echoed(aliceStream, 'a1')).toBe('a1');
    const daveStream = daveClient.client.openStream(`127.0.0.1:${fixture.echoPort}`);
    expect(await echoed(daveStream, 'd1')).toBe('d1');
    const daveReset = ended(daveStream);
    const before = fixture.pair.client.status().sessionsOpened;

    const result = fixture.pair.server.reload(fixture.pair.allowlist([alice, { ...dave, allow: ['127.0.0.1:1'] }, carol]));
    expect(result).toMatchObject({ removed: 1, streamsReset: 1, peers: 3 });
    // bob's session ends with 'revoked'.
    await waitUntil(() => !bobClient.client.connected, 'bob to lose the session', 5_000);
    expect(
      fixture.pair.server
        .status()
        .sessions.map((s) => s.peer)
        .sort(),
    ).toEqual(['alice', 'dave']);
    expect(bobClient.lines.find((l) => l.event === 'session.closed')?.reason).toBe('revoked');
    // dave keeps his session, not his stream.
    const reset = await daveReset;
    expect(reset).not.toBe('end');
    expect((reset as Failure).reason).toBe('not-permitted');
    expect(daveClient.client.connected).toBe(true);
    // alice's session and stream are untouched.
    expect(await echoed(aliceStream, 'a2')).toBe('a2');
    expect(fixture.pair.client.status().sessionsOpened).toBe(before);
    // carol, added, gets in.
    const carolClient = await fixture.pair.addClient(3);
    expect(carolClient.client.connected).toBe(true);
    aliceStream.end();
  });

  it('drain: open streams finish within the grace time, new opens are refused, then every session closes', async () => {
    fixture.pair = await startDaemonPair({ realSocket, peers: [{ name: 'alice', allow: [ECHO_RULE()] }], server: { shutdownGraceMs: 30_000 } });
    const open = fixture.pair.client.openStream(`127.0.0.1:${fixture.echoPort}`);
    expect(await echoed(open, 'before')).toBe('before');
    const stopped = fixture.pair.server.shutdown();
    await waitUntil(() => fixture.pair!.server.status().draining, 'the drain to start', 5_000);
    // A new open is refused while the old stream still carries data.
    const late = fixture.pair.client.openStream(`127.0.0.1:${fixture.echoPort}`);
    const refused = await failure(late);
    expect(refused.reason).toBe('limit');
    expect(refused.message).toContain('shutting down');
    expect(await echoed(open, 'during')).toBe('during');
    expect(fixture.pair.server.status().sessions).toHaveLength(1);
    // The stream ends: the drain is over, the session closes with 'shutdown'.
    const done = ended(open);
    open.end();
    expect(await done).toBe('end');
    await stopped;
    expect(fixture.pair.events('server', 'daemon.stop').at(-1)).toMatchObject({ streamsCut: 0 });
    await waitUntil(() => fixture.pair!.events('client', 'session.closed').length > 0, 'the client to see the close', 5_000);
    expect(fixture.pair.events('client', 'session.closed')[0]).toMatchObject({ reason: 'shutdown' });
  });

  it('drain: a stream still open at the end of the grace time is cut', async () => {
    fixture.pair = await startDaemonPair({ realSocket, peers: [{ name: 'alice', allow: [ECHO_RULE()] }], server: { shutdownGraceMs: 300 } });
    const open = fixture.pair.client.openStream(`127.0.0.1:${fixture.echoPort}`);
    expect(await echoed(open, 'x')).toBe('x');
    const cut = ended(open);
    await fixture.pair.server.shutdown();
    expect(fixture.pair.events('server', 'daemon.stop').at(-1)).toMatchObject({ streamsCut: 1 });
    expect(await cut).not.toBe('end');
  });
});

describe.each(TRANSPORTS)('ServerDaemon dial queue $name', ({ realSocket }) => {
  let slow: SlowTarget;
  beforeAll(async () => {
    slow = await startSlowTarget();
  });
  afterAll(async () => {
    await slow.stop();
  });

  it('an open cancelled while queued frees its place, and the next open proceeds once the slot frees', async () => {
    fixture.pair = await startDaemonPair({
      realSocket,
      peers: [{ name: 'alice', allow: [ECHO_RULE(), `127.0.0.1:${slow.port}`] }],
      server: { dialsInFlight: 1, dialTimeoutMs: 60_000 },
      client: { dialTimeoutMs: 60_000 },
    });
    const dials = (): { inFlight: number; queued: number } => {
      const s = fixture.pair!.server.status().sessions[0]!;
      return { inFlight: s.dialsInFlight, queued: s.dialsQueued };
    };
    // A holds the one slot (its dial hangs), B and C wait behind it.
    const a = fixture.pair.client.openStream(`127.0.0.1:${slow.port}`);
    a.on('error', () => {});
    await waitUntil(() => dials().inFlight === 1, 'A to dial', 5_000);
    const b = fixture.pair.client.openStream(`127.0.0.1:${slow.port}`);
    b.on('error', () => {});
    await waitUntil(() => dials().queued === 1, 'B to queue', 5_000);
    const c = fixture.pair.client.openStream(`127.0.0.1:${fixture.echoPort}`);
    await waitUntil(() => dials().queued === 2, 'C to queue', 5_000);
    // B gives up while queued: its place is freed at once, A still holds the slot.
    b.destroy();
    await waitUntil(() => dials().queued === 1, 'B to leave the queue', 5_000);
    expect(dials().inFlight).toBe(1);
    // A gives up during its dial: the slot passes to C, which opens.
    a.destroy();
    expect(await echoed(c, 'after')).toBe('after');
    expect(dials()).toEqual({ inFlight: 0, queued: 0 });
    expect(fixture.pair.events('server', 'stream.open').map((l) => l.target)).toEqual([`127.0.0.1:${fixture.echoPort}`]);
    c.end();
  });
});
