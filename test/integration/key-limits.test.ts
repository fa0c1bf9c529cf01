/**
 * One key must not be able to exhaust the server host's memory (issue 13, item 4): a real server
 * daemon, six sessions of one key opening 200 streams each toward a target that accepts and never
 * reads. The server refuses the sessions beyond max_sessions_per_key and the streams beyond
 * max_streams_per_key, and withholds credit while a target socket cannot drain, so what the key
 * gets accepted, the server's RSS and the host's TCP memory stay within the bound docs/STREAMS.md
 * states ("Memory per key"). The clients are in-process sessions (the attacker's own code), the
 * server is bin/twoway.
 */
import fs from 'node:fs';
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MuxSession, type MuxCloseInfo } from '../../src/mux/session.js';
import type { MuxStream } from '../../src/mux/stream.js';
import { connectSecure } from '../../src/session/connect-secure.js';
import { TestTunnel } from '../helpers/tunnel.js';
import { waitUntil } from '../helpers/wait.js';

const SESSIONS = 6;
const STREAMS_PER_SESSION = 200;
const MAX_SESSIONS_PER_KEY = 4;
const MAX_STREAMS_PER_KEY = 100;
const WINDOW = 256 * 1024;
/** What each stream tries to send at most (bounded load). */
const PER_STREAM_LIMIT = 32 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const MiB = 1024 * 1024;
const PAGE = 4096;

let tunnel: TestTunnel;
let target: net.Server;
const targetSockets = new Set<net.Socket>();

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

function tcpMemBytes(): number {
  const m = /TCP: .* mem (\d+)/.exec(fs.readFileSync('/proc/net/sockstat', 'utf8'));
  return Number(m![1]) * PAGE;
}

/** net.ipv4.tcp_wmem or tcp_rmem: [min, default, max] in bytes. */
function sysctl(name: 'tcp_wmem' | 'tcp_rmem'): number[] {
  return fs.readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/).map(Number);
}

beforeAll(async () => {
  target = net.createServer({ pauseOnConnect: true }, (socket) => {
    // Accepts and never reads.
    socket.on('error', () => {});
    targetSockets.add(socket);
    socket.on('close', () => targetSockets.delete(socket));
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  const port = (target.address() as net.AddressInfo).port;
  tunnel = new TestTunnel({
    peers: [{ name: 'mallory', allow: [`127.0.0.1:${port}`] }],
    // The opens come fast (the per-session open rate is not what is under test here).
    serverLimits:
      `stream_open_rate = 5000\nstream_open_burst = 5000\n` + `max_sessions_per_key = ${MAX_SESSIONS_PER_KEY}\nmax_streams_per_key = ${MAX_STREAMS_PER_KEY}\n`,
  });
  await tunnel.startServer();
}, 30_000);

afterAll(async () => {
  for (const s of targetSockets) s.destroy();
  await tunnel?.stop();
  target?.close();
});

describe('memory per key', () => {
  it('refuses sessions and streams beyond the per-key caps and keeps RSS and host TCP memory within the stated bound', async () => {
    const server = tunnel.server!;
    const port = (target.address() as net.AddressInfo).port;
    const logger = pino({ level: 'silent' });
    const peer = tunnel.peers[0]!;
    const rssBefore = rssBytes(server.pid);
    const tcpBefore = tcpMemBytes();

    const muxes: MuxSession[] = [];
    const closes: Array<MuxCloseInfo | undefined> = [];
    for (let i = 0; i < SESSIONS; i++) {
      // The replay guard wants 20 ms between two initiations of one key.
      if (i > 0) await new Promise((r) => setTimeout(r, 30));
      const session = await connectSecure({ url: tunnel.url, staticKeyPair: peer.key, serverPublicKeys: [tunnel.serverKey.publicKey], logger });
      const mux = new MuxSession(session, { role: 'client', logger });
      const index = muxes.length;
      closes.push(undefined);
      mux.onClose((info) => (closes[index] = info));
      muxes.push(mux);
    }
    // The sessions beyond the cap are closed by the server at once, with the reason.
    await waitUntil(() => closes.filter((c) => c !== undefined).length >= SESSIONS - MAX_SESSIONS_PER_KEY, 'the sessions beyond the cap closed', 10_000);
    const live = muxes.filter((m) => !m.closed);
    expect(live).toHaveLength(MAX_SESSIONS_PER_KEY);
    for (const info of closes.filter((c) => c !== undefined)) expect(info!.message).toMatch(/too many sessions for this key/);
    const refusedSessions = server.logLines().filter((l) => l.event === 'auth.refused' && l.reason === 'too-many-sessions');
    expect(refusedSessions).toHaveLength(SESSIONS - MAX_SESSIONS_PER_KEY);

    // Every live session opens STREAMS_PER_SESSION streams and writes as fast as credit allows.
    const streams: MuxStream[] = [];
    let refused = 0;
    const failed: Error[] = [];
    for (const mux of live) {
      for (let i = 0; i < STREAMS_PER_SESSION; i++) {
        const stream = mux.openStream(`127.0.0.1:${port}`);
        streams.push(stream);
        stream.on('error', (err: Error & { code?: string }) => {
          if (err.code === 'ERR_MUX_STREAM_REFUSED') refused++;
          else failed.push(err);
        });
        const pump = (): void => {
          while (!stream.destroyed && stream.bytesWritten + stream.writableLength < PER_STREAM_LIMIT) {
            if (!stream.write(CHUNK)) return;
          }
        };
        stream.on('drain', pump);
        pump();
      }
    }
    const accepted = (): number => streams.reduce((n, s) => n + s.bytesWritten, 0);
    await waitUntil(() => refused + failed.length + targetSockets.size >= streams.length, 'every open answered', 20_000);
    expect(failed.map((e) => e.message)).toEqual([]);
    // Wait until flow control has stopped the senders: no credit granted for 1.5 s (bounded).
    let last = -1;
    let stableSince = performance.now();
    await waitUntil(
      () => {
        const now = accepted();
        if (now !== last) {
          last = now;
          stableSince = performance.now();
        }
        return performance.now() - stableSince > 1_500;
      },
      'the senders to stall',
      30_000,
    );
    const rssAfter = rssBytes(server.pid);
    const tcpAfter = tcpMemBytes();
    const open = targetSockets.size;

    // docs/STREAMS.md, "Memory per key": streams x (window + 256 KiB: the stream's readable and
    // the socket's write high-water marks, one frame each) + sessions x the session's 16 MiB
    // growth budget in the server process. In the kernel, toward a target on this host that
    // never reads: per stream the server socket's send buffer (at most tcp_wmem max) and the
    // target's receive buffer (tcp_rmem default); per session both ends' buffers (the clients
    // run on this host too), at most tcp_wmem max + tcp_rmem max each.
    const [wmem, rmem] = [sysctl('tcp_wmem'), sysctl('tcp_rmem')];
    const perStreamUser = WINDOW + 256 * 1024;
    const userBound = MAX_STREAMS_PER_KEY * perStreamUser + MAX_SESSIONS_PER_KEY * 16 * MiB;
    const kernelBound = MAX_STREAMS_PER_KEY * (wmem[2]! + rmem[1]!) + 2 * MAX_SESSIONS_PER_KEY * (wmem[2]! + rmem[2]!);
    const figures = {
      sessionsRefused: closes.filter((c) => c !== undefined).length,
      streamsOpen: open,
      streamsRefused: refused,
      acceptedMiB: +(accepted() / MiB).toFixed(1),
      rssMiB: [+(rssBefore / MiB).toFixed(1), +(rssAfter / MiB).toFixed(1)],
      tcpMemMiB: [+(tcpBefore / MiB).toFixed(1), +(tcpAfter / MiB).toFixed(1)],
      userBoundMiB: +(userBound / MiB).toFixed(1),
      kernelBoundMiB: +(kernelBound / MiB).toFixed(1),
    };
    console.log(`memory per key: ${JSON.stringify(figures)}`);

    expect(open).toBe(MAX_STREAMS_PER_KEY);
    expect(refused).toBe(live.length * STREAMS_PER_SESSION - MAX_STREAMS_PER_KEY);
    const refusedStreams = server.logLines().filter((l) => l.event === 'stream.refused' && /too many streams for this key/.test(String(l.detail)));
    expect(refusedStreams.length).toBeGreaterThan(0);
    // What the server accepted is what it buffers in user space plus what the kernel took.
    expect(accepted()).toBeLessThanOrEqual(userBound + kernelBound);
    expect(rssAfter - rssBefore).toBeLessThanOrEqual(userBound + 64 * MiB);
    expect(tcpAfter - tcpBefore).toBeLessThanOrEqual(kernelBound);

    for (const mux of live) mux.close();
  }, 90_000);
});
