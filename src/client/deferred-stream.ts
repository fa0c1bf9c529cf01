import { Duplex } from 'node:stream';

/**
 * A stream handed to a forwarder before the tunnel is up: it buffers writes (within the Duplex's
 * own high-water mark, so backpressure still reaches the local socket) until the real stream
 * exists, then relays both ways. Errors, `'open'`, half-close and destroy pass through unchanged,
 * so a refusal keeps its code and reason.
 */
export class DeferredStream extends Duplex {
  #inner: Duplex | undefined;
  #queued: Array<{ chunk: Buffer; callback: (err?: Error | null) => void }> = [];
  #finalCallback: ((err?: Error | null) => void) | undefined;
  readonly #onCancel: (() => void) | undefined;

  /** `onCancel` runs when this stream is destroyed before `inner` settles (a queued open gives up). */
  constructor(inner: Promise<Duplex>, onCancel?: () => void) {
    super({ allowHalfOpen: true });
    this.#onCancel = onCancel;
    inner.then(
      (stream) => this.#attach(stream),
      (err: Error) => this.destroy(err),
    );
  }

  #attach(inner: Duplex): void {
    if (this.destroyed) {
      inner.destroy();
      return;
    }
    this.#inner = inner;
    if (inner.destroyed) {
      // Failed before we got it (a refused or closed session's stream): pass the failure on.
      this.destroy(inner.errored ?? new Error('stream closed before it was attached'));
      return;
    }
    inner.on('open', () => this.emit('open'));
    inner.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('error', (err) => this.destroy(err));
    inner.on('close', () => {
      if (!this.destroyed && !this.writableFinished) this.destroy();
    });
    for (const { chunk, callback } of this.#queued) inner.write(chunk, callback);
    this.#queued = [];
    if (this.#finalCallback) {
      const cb = this.#finalCallback;
      this.#finalCallback = undefined;
      inner.end(() => cb());
    }
  }

  override _read(): void {
    this.#inner?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.#inner) this.#inner.write(chunk, callback);
    else this.#queued.push({ chunk, callback });
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (this.#inner) this.#inner.end(() => callback());
    else this.#finalCallback = callback;
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (this.#inner === undefined) this.#onCancel?.();
    if (this.#inner && !this.#inner.destroyed) this.#inner.destroy(err ?? undefined);
    callback(err);
  }
}
