import { describe, expect, it } from 'vitest';
import { createChannelPair, type CloseReason } from '../../src/channel.js';

function collect(channel: ReturnType<typeof createChannelPair>[0]): { messages: string[]; closed: Promise<CloseReason> } {
  const messages: string[] = [];
  channel.onMessage((m) => messages.push(Buffer.from(m).toString()));
  const closed = new Promise<CloseReason>((resolve) => channel.onClose(resolve));
  return { messages, closed };
}

describe('in-memory MessageChannel pair', () => {
  it('delivers messages in order, asynchronously, concatenating parts', async () => {
    const [a, b] = createChannelPair();
    const got = collect(b);
    a.send(Buffer.from('one'));
    a.send([Buffer.from('t'), Buffer.from('wo')]);
    expect(got.messages).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(got.messages).toEqual(['one', 'two']);
  });

  it('reports backpressure above the high-water mark and drains', async () => {
    const [a, b] = createChannelPair(8);
    collect(b);
    const drained = new Promise<void>((resolve) => a.onDrain(resolve));
    expect(a.send(Buffer.alloc(8))).toBe(true);
    expect(a.send(Buffer.alloc(1))).toBe(false);
    expect(a.bufferedAmount).toBe(9);
    await drained;
    expect(a.bufferedAmount).toBe(0);
  });

  it('closes both ends once, remote flag on the far end, data sent before the close still arrives', async () => {
    const [a, b] = createChannelPair();
    const atA = collect(a);
    const atB = collect(b);
    b.onMessage((m) => {
      atB.messages.push(Buffer.from(m).toString());
      b.send(Buffer.from('last words'));
      b.close({ code: 'protocol-error', message: 'bye' });
    });
    a.send(Buffer.from('hello'));
    const [ra, rb] = await Promise.all([atA.closed, atB.closed]);
    expect(atB.messages).toEqual(['hello']);
    expect(atA.messages).toEqual(['last words']);
    expect(rb).toEqual({ code: 'protocol-error', message: 'bye', remote: false });
    expect(ra).toEqual({ code: 'protocol-error', message: 'bye', remote: true });
    expect(a.send(Buffer.from('x'))).toBe(false);
    expect(a.closed && b.closed).toBe(true);
  });
});
