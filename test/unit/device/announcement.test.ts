/**
 * Both halves of the `@services` exchange over a real mux pair: what the agent writes is what the
 * server reads; a closed session announces nothing and throws nothing; an oversized announcement
 * is reset with 'limit' and never handed on.
 */
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { readAnnouncement, writeAnnouncement } from '../../../src/device/announcement.js';
import { ANNOUNCE_TARGET, MAX_ANNOUNCEMENT_BYTES } from '../../../src/device/target.js';
import type { StreamRequest } from '../../../src/mux/stream-request.js';
import { sessionPair } from '../../helpers/streams.js';
import { waitUntil } from '../../helpers/wait.js';

type LogLine = Record<string, unknown>;

function logger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { log: pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) }), lines };
}

/** A mux pair whose server side reads every `@services` stream; resolves the lists it read. */
function pair(): { agentMux: ReturnType<typeof sessionPair>['client']; read: string[][]; targets: string[]; server: ReturnType<typeof logger> } {
  const read: string[][] = [];
  const targets: string[] = [];
  const server = logger();
  const { client } = sessionPair({
    onStreamRequest: (request: StreamRequest) => {
      targets.push(request.target);
      readAnnouncement(request.accept(), 'build1', server.log, (services) => read.push(services));
    },
  });
  return { agentMux: client, read, targets, server };
}

describe('the @services exchange', () => {
  it('the server reads exactly the names the agent wrote, on the reserved target', async () => {
    const p = pair();
    const agent = logger();
    writeAnnouncement(p.agentMux, ['ssh', 'web', 'ssh'], agent.log);
    await waitUntil(() => p.read.length === 1, 'the announcement', 5_000);
    expect(p.targets).toEqual([ANNOUNCE_TARGET]);
    expect(p.read[0]).toEqual(['ssh', 'web']);
    expect(agent.lines.find((l) => l.event === 'device.services')).toMatchObject({ services: ['ssh', 'web', 'ssh'] });
    expect(p.server.lines.find((l) => l.event === 'device.services')).toMatchObject({ device: 'build1', services: ['ssh', 'web'] });
  });

  it('no services is an announcement too (the server learns the list is empty)', async () => {
    const p = pair();
    writeAnnouncement(p.agentMux, [], logger().log);
    await waitUntil(() => p.read.length === 1, 'the announcement', 5_000);
    expect(p.read[0]).toEqual([]);
  });

  it('a closed session: nothing is opened and nothing thrown', () => {
    const p = pair();
    p.agentMux.close('normal');
    const agent = logger();
    expect(() => writeAnnouncement(p.agentMux, ['ssh'], agent.log)).not.toThrow();
    expect(agent.lines).toEqual([]);
  });

  it('over MAX_ANNOUNCEMENT_BYTES: reset with limit, logged, never handed on', async () => {
    const p = pair();
    const stream = p.agentMux.openStream(ANNOUNCE_TARGET);
    const reset = new Promise<Error & { reason?: string }>((r) => stream.once('error', r));
    stream.end(Buffer.alloc(MAX_ANNOUNCEMENT_BYTES + 1, 0x20));
    expect((await reset).reason).toBe('limit');
    expect(p.read).toEqual([]);
    expect(p.server.lines.some((l) => l.event === 'device.services' && l.device === 'build1' && l.services === undefined)).toBe(true);
  });

  it('malformed: logged with the reason, never handed on', async () => {
    const p = pair();
    const stream = p.agentMux.openStream(ANNOUNCE_TARGET);
    stream.on('error', () => {});
    stream.end('{"services": ["no.dots"]}');
    await waitUntil(() => p.server.lines.some((l) => typeof l.err === 'string'), 'the warning', 5_000);
    expect(p.read).toEqual([]);
  });
});
