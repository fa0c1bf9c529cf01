/**
 * The outbound side of a mux session: frames onto the channel, in order, with channel
 * backpressure. Control frames (OPEN, OPEN_OK, WINDOW_UPDATE, FIN, RESET...) and small DATA
 * frames are batched into one channel message per turn of the event loop (flushed in the check
 * phase, after every I/O callback of this turn): many streams opening or exchanging small
 * messages at once then share records, hence cipher set-ups and socket writes. A large DATA frame
 * takes any pending frames in front of it, in the same message when they fit, so an OPEN always
 * precedes its early data and a FIN its last data.
 */
import type { MessageChannel } from '../channel.js';
import { FRAME_HEADER_BYTES, encodeDataHeader } from './frame.js';

/** One channel message stays within a secure record (~65 000 bytes of plaintext). */
export const MAX_CHANNEL_MESSAGE_BYTES = 65_000;
/** Queued control frames are flushed at the end of the tick, or once they reach this size. */
const CONTROL_FLUSH_BYTES = 16 * 1024;
/** DATA frames up to this payload size join the batch instead of going out as a record alone. */
export const SMALL_DATA_BYTES = 2 * 1024;

/** Anything that can resume a held write once the channel drains. */
export interface DrainWaiter {
  _resumeWrite(): void;
}

/** Counters the writer keeps up to date (part of MuxStats). */
export interface WriterStats {
  framesSent: number;
  bytesSent: number;
}

export class FrameWriter {
  readonly #channel: MessageChannel;
  readonly #stats: WriterStats;
  #blocked = false;
  #stopped = false;
  /** Writers holding data until the channel drains, in arrival order (round robin). */
  readonly #waiting = new Set<DrainWaiter>();
  #control: Uint8Array[] = [];
  #controlBytes = 0;
  #flushImmediate: NodeJS.Immediate | undefined;
  readonly #flushTask = (): void => {
    this.#flushImmediate = undefined;
    this.flush();
  };

  constructor(channel: MessageChannel, stats: WriterStats) {
    this.#channel = channel;
    this.#stats = stats;
  }

  /** True while the channel is above its high-water mark (the last send returned false). */
  get blocked(): boolean {
    return this.#blocked;
  }

  /**
   * Sends one DATA frame of `length` bytes given as `parts` (views of the written chunks, in
   * order): header and payload travel as separate parts of one message, so nothing is copied here.
   */
  sendData(streamId: number, parts: readonly Uint8Array[], length: number): void {
    if (this.#stopped) return;
    const header = encodeDataHeader(streamId, length);
    if (length <= SMALL_DATA_BYTES) {
      this.#stats.framesSent++;
      this.#stats.bytesSent += FRAME_HEADER_BYTES + length;
      this.#queue(header, FRAME_HEADER_BYTES + length);
      for (let i = 0; i < parts.length; i++) this.#control.push(parts[i]!);
      return;
    }
    let message: Uint8Array[];
    if (this.#control.length > 0 && this.#controlBytes + FRAME_HEADER_BYTES + length <= MAX_CHANNEL_MESSAGE_BYTES) {
      message = this.#control;
      this.#control = [];
      this.#controlBytes = 0;
    } else {
      this.flush();
      message = [];
    }
    message.push(header);
    for (let i = 0; i < parts.length; i++) message.push(parts[i]!);
    this.#stats.framesSent++;
    this.#stats.bytesSent += FRAME_HEADER_BYTES + length;
    if (!this.#channel.send(message)) this.#blocked = true;
  }

  /** Queues a control frame for this tick's batch. */
  sendControl(frame: Uint8Array): void {
    if (this.#stopped) return;
    this.#stats.framesSent++;
    this.#stats.bytesSent += frame.length;
    this.#queue(frame, frame.length);
  }

  /** Adds a frame (or a small DATA frame's header, its payload parts follow) to the batch. */
  #queue(first: Uint8Array, frameBytes: number): void {
    if (this.#controlBytes + frameBytes > CONTROL_FLUSH_BYTES) this.flush();
    this.#control.push(first);
    this.#controlBytes += frameBytes;
    this.#flushImmediate ??= setImmediate(this.#flushTask);
  }

  /** Sends the queued control frames now. */
  flush(): void {
    if (this.#flushImmediate !== undefined) {
      clearImmediate(this.#flushImmediate);
      this.#flushImmediate = undefined;
    }
    if (this.#control.length === 0 || this.#stopped) return;
    const parts = this.#control;
    this.#control = [];
    this.#controlBytes = 0;
    // Control frames go out even above the high-water mark: they are small and unblock the peer.
    if (!this.#channel.send(parts)) this.#blocked = true;
  }

  waitForDrain(waiter: DrainWaiter): void {
    this.#waiting.add(waiter);
  }

  forget(waiter: DrainWaiter): void {
    this.#waiting.delete(waiter);
  }

  /** The channel drained: resume held writes in turn until it fills again. */
  onDrain(): void {
    this.#blocked = false;
    for (const waiter of this.#waiting) {
      this.#waiting.delete(waiter);
      waiter._resumeWrite();
      if (this.#blocked) break;
    }
  }

  /** Sends nothing more (the session ended); queued frames are dropped. */
  stop(): void {
    this.#stopped = true;
    if (this.#flushImmediate !== undefined) clearImmediate(this.#flushImmediate);
    this.#flushImmediate = undefined;
    this.#control = [];
    this.#controlBytes = 0;
    this.#waiting.clear();
  }
}
