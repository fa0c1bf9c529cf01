import { randomBytes } from 'node:crypto';
import { PassThrough, type Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { StreamOpener } from '../../../src/forward/local-forward.js';
import { connectStdio } from '../../../src/forward/stdio.js';
import { readAll, streamError, streamPair } from '../../helpers/fake-opener.js';
import { waitUntil } from '../../helpers/wait.js';

/** An opener handing out in-memory pairs; the test plays the far end. */
function pairOpener(): { open: StreamOpener; far: Duplex[]; targets: string[] } {
  const far: Duplex[] = [];
  const targets: string[] = [];
  return {
    far,
    targets,
    open: (target) => {
      targets.push(target);
      const [near, f] = streamPair();
      f.on('error', () => {});
      far.push(f);
      return near;
    },
  };
}

describe('connectStdio', () => {
  it('pipes stdin to the stream and the stream to stdout, half-closing each way', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const opener = pairOpener();
    const out = readAll(stdout);
    const status = connectStdio('host.example:22', opener.open, { stdin, stdout });
    expect(opener.targets).toEqual(['host.example:22']);
    const far = opener.far[0]!;
    const farGot = readAll(far);
    const up = randomBytes(1024 * 1024);
    stdin.end(up);
    // stdin EOF arrives as the stream's end; the other direction is still open.
    expect((await farGot).equals(up)).toBe(true);
    const down = randomBytes(512 * 1024);
    far.end(down);
    expect(await status).toBe(0);
    expect((await out).equals(down)).toBe(true);
  });

  it('keeps writing output after the far end finished reading (its FIN first)', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const opener = pairOpener();
    const out = readAll(stdout);
    const status = connectStdio('h.example:1', opener.open, { stdin, stdout });
    const far = opener.far[0]!;
    far.end('bye from far');
    expect((await out).toString()).toBe('bye from far');
    let settled = false;
    void status.then(() => (settled = true));
    // Not done until our direction ended too.
    const farGot = readAll(far);
    const first = new Promise((resolve) => far.once('data', resolve));
    stdin.write('still ');
    await first;
    expect(settled).toBe(false);
    stdin.end('talking');
    expect((await farGot).toString()).toBe('still talking');
    expect(await status).toBe(0);
  });

  it('rejects with the refusal (code and reason) so the CLI can print it', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const open: StreamOpener = () => {
      const [near, far] = streamPair();
      far.on('error', () => {});
      setImmediate(() => near.destroy(streamError('ERR_MUX_STREAM_REFUSED', 'not-permitted', 'db.example:5432: not permitted')));
      return near;
    };
    await expect(connectStdio('db.example:5432', open, { stdin, stdout })).rejects.toMatchObject({
      code: 'ERR_MUX_STREAM_REFUSED',
      reason: 'not-permitted',
      message: 'db.example:5432: not permitted',
    });
    expect(stdin.listenerCount('data')).toBe(0);
  });

  it('rejects when the stream is reset midway, and when it is cancelled without an error', async () => {
    const opener = pairOpener();
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const status = connectStdio('h.example:1', opener.open, { stdin, stdout });
    opener.far[0]!.write('partial');
    opener.far[0]!.destroy(streamError('ERR_MUX_CLOSED', 'tunnel-closed'));
    await expect(status).rejects.toMatchObject({ code: 'ERR_MUX_STREAM_RESET' });

    const opener2 = pairOpener();
    const status2 = connectStdio('h.example:1', opener2.open, { stdin: new PassThrough(), stdout: new PassThrough() });
    await waitUntil(() => opener2.far.length === 1);
    // A near end destroyed with no error: still not a clean end.
    const near = (opener2.far[0] as unknown as { peer: Duplex }).peer;
    near.destroy();
    await expect(status2).rejects.toMatchObject({ code: 'ERR_FORWARD_ABORTED' });
  });

  it('honours stdout backpressure', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough({ highWaterMark: 16 * 1024 });
    const opener = pairOpener();
    const status = connectStdio('h.example:1', opener.open, { stdin, stdout });
    const far = opener.far[0]!;
    let offered = 0;
    const chunk = Buffer.alloc(16 * 1024, 1);
    const total = 4 * 1024 * 1024;
    const writer = (async () => {
      while (offered < total) {
        const ok = far.write(chunk);
        offered += chunk.length;
        if (!ok) await new Promise((r) => far.once('drain', r));
      }
      far.end();
    })();
    await waitUntil(() => far.writableNeedDrain, 'writer stalled', 5_000);
    expect(offered).toBeLessThan(total / 4);
    const out = readAll(stdout);
    stdin.end();
    await writer;
    expect((await out).length).toBe(total);
    expect(await status).toBe(0);
  });
});
