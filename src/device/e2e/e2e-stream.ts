/**
 * An end-to-end Noise session over one stream between a user and a device. The server in the
 * middle relays the inner stream's bytes; it cannot read them, alter them undetected, cut them
 * short without the application seeing a reset, or redirect them to another device or service.
 *
 * The user is the initiator of Noise_IK_25519_ChaChaPoly_BLAKE2s and pins the device's static key;
 * the device checks that the user's static key is exactly the one the server vouched for. The
 * prologue binds the service name. The user's first transport message is a CONFIRM record: msg1
 * alone can be replayed (by the server, which sees it), so the device's side opens only on the
 * CONFIRM, which only the holder of msg1's ephemeral key can produce (SECURITY.md #1). The
 * wrapper is a Duplex of plaintext that emits 'open' once its side may act: the user's on msg2,
 * the device's on CONFIRM. An END record carries a half-close, so an inner end without one is a
 * truncation (ERR_E2E_TRUNCATED), never a clean end.
 */
import { timingSafeEqual } from 'node:crypto';
import { Duplex } from 'node:stream';
import type { KeyPair } from '../../crypto/keys.js';
import { E2EError, type TwowayError } from '../../errors.js';
import type { CipherState } from '../../noise/cipher-state.js';
import { HandshakeState } from '../../noise/handshake-state.js';
import { MAX_E2E_PAYLOAD_BYTES, MessageReassembler, RecordType, lengthPrefix } from './e2e-records.js';

export const E2E_PROTOCOL = 'Noise_IK_25519_ChaChaPoly_BLAKE2s';
/** Prologue prefix; the service name follows it. */
export const E2E_PROLOGUE_PREFIX = 'twoway-e2e/1\n';
/** How long the inner handshake may take once the stream exists. */
export const E2E_HANDSHAKE_TIMEOUT_MS = 15_000;
/** Writable and readable high-water marks of the wrapper. */
const HIGH_WATER_MARK_BYTES = 128 * 1024;

const EMPTY = new Uint8Array(0);
const TYPE_DATA = Uint8Array.of(RecordType.DATA);
const TYPE_END = Uint8Array.of(RecordType.END);
const TYPE_CONFIRM = Uint8Array.of(RecordType.CONFIRM);

export interface E2EInitiatorOptions {
  readonly staticKeyPair: KeyPair;
  /** The device's static public key, pinned in the user's config. */
  readonly deviceKey: Uint8Array;
  readonly service: string;
}

export interface E2EResponderOptions {
  readonly staticKeyPair: KeyPair;
  /** The user's static public key as the server authenticated it. */
  readonly expectedUserKey: Uint8Array;
  readonly service: string;
}

/** `confirming`: the device has sent msg2 and waits for the user's CONFIRM. */
type Phase = 'handshake' | 'confirming' | 'open' | 'failed';

/** The Duplex `e2eInitiate` and `e2eRespond` return. */
export class E2EStream extends Duplex {
  readonly #inner: Duplex;
  readonly #initiator: boolean;
  readonly #expectedUserKey: Uint8Array | undefined;
  #hs: HandshakeState | undefined;
  #send: CipherState | undefined;
  #receive: CipherState | undefined;
  #phase: Phase = 'handshake';
  readonly #reassembler = new MessageReassembler();
  #timer: NodeJS.Timeout | undefined;
  /** A write or final waiting for the handshake. */
  #waiting: Array<() => void> = [];
  #endReceived = false;
  #endSent = false;
  #innerPaused = false;
  /** The short remainder of a bulk write, held until the end of the event-loop turn. */
  #tail: Buffer | undefined;
  #tailTimer: NodeJS.Immediate | undefined;

  constructor(inner: Duplex, initiator: boolean, staticKeyPair: KeyPair, service: string, remoteOrExpected: Uint8Array) {
    super({ allowHalfOpen: true, writableHighWaterMark: HIGH_WATER_MARK_BYTES, readableHighWaterMark: HIGH_WATER_MARK_BYTES });
    this.#inner = inner;
    this.#initiator = initiator;
    this.#expectedUserKey = initiator ? undefined : Uint8Array.from(remoteOrExpected);
    this.#hs = new HandshakeState({
      protocolName: E2E_PROTOCOL,
      initiator,
      prologue: Buffer.from(E2E_PROLOGUE_PREFIX + service, 'utf8'),
      s: staticKeyPair,
      ...(initiator ? { rs: remoteOrExpected } : {}),
    });
    this.#timer = setTimeout(
      () => this.#fail('ERR_E2E_HANDSHAKE', `end-to-end handshake not complete within ${E2E_HANDSHAKE_TIMEOUT_MS} ms`),
      E2E_HANDSHAKE_TIMEOUT_MS,
    ).unref();
    inner.on('data', (chunk: Buffer) => this.#onInnerData(chunk));
    inner.on('end', () => {
      if (!this.#endReceived) this.#fail('ERR_E2E_TRUNCATED', 'the stream ended without an authenticated end of data (truncated in transit)');
    });
    inner.on('error', (err: Error) => this.destroy(err));
    inner.on('close', () => {
      if (!this.#endReceived && !this.destroyed) this.#fail('ERR_E2E_TRUNCATED', 'the stream closed without an authenticated end of data');
    });
    if (initiator) {
      // msg1 goes out at once: the inner stream buffers it within its opening credit.
      this.#writeMessage(this.#hs.writeMessage(EMPTY));
    }
  }

  /** True once the handshake completed. */
  get isOpen(): boolean {
    return this.#phase === 'open';
  }

  #writeMessage(message: Uint8Array): boolean {
    // One write per message: a MuxStream sends a short write as a frame of its own at once, so a
    // separate 2-byte prefix would double the records on the wire.
    const framed = Buffer.allocUnsafe(2 + message.length);
    lengthPrefix(message.length).copy(framed, 0);
    framed.set(message, 2);
    return this.#inner.write(framed);
  }

  #fail(code: 'ERR_E2E_HANDSHAKE' | 'ERR_E2E_RECORD' | 'ERR_E2E_TRUNCATED', message: string, cause?: unknown): void {
    if (this.destroyed) return;
    this.#phase = 'failed';
    this.destroy(new E2EError(code, message, cause === undefined ? undefined : { cause }));
  }

  #onInnerData(chunk: Buffer): void {
    if (this.destroyed) return;
    this.#reassembler.push(chunk);
    for (let message = this.#reassembler.next(); message !== undefined && !this.destroyed; message = this.#reassembler.next()) {
      if (this.#phase === 'handshake') this.#onHandshakeMessage(message);
      else if (this.#phase === 'confirming') this.#onConfirm(message);
      else this.#onRecord(message);
    }
  }

  #onHandshakeMessage(message: Buffer): void {
    const hs = this.#hs!;
    try {
      hs.readMessage(message);
    } catch (err) {
      this.#fail(
        'ERR_E2E_HANDSHAKE',
        `end-to-end handshake failed: ${this.#initiator ? 'the device did not prove the pinned key' : 'bad handshake message'}`,
        err,
      );
      return;
    }
    if (!this.#initiator) {
      const key = hs.remoteStaticPublicKey;
      const expected = this.#expectedUserKey!;
      if (key === undefined || key.length !== expected.length || !timingSafeEqual(key, expected)) {
        this.#fail('ERR_E2E_HANDSHAKE', 'end-to-end handshake failed: the user did not prove the key the server vouched for');
        return;
      }
      try {
        this.#writeMessage(hs.writeMessage(EMPTY));
      } catch (err) {
        this.#fail('ERR_E2E_HANDSHAKE', 'end-to-end handshake failed', err);
        return;
      }
    }
    const { send, receive } = hs.split();
    this.#send = send;
    this.#receive = receive;
    this.#hs = undefined;
    if (!this.#initiator) {
      // msg1 may be a replay: nothing happens on this side until the user's CONFIRM.
      this.#phase = 'confirming';
      return;
    }
    try {
      this.#writeRecord(TYPE_CONFIRM, []);
    } catch (err) {
      this.#fail('ERR_E2E_HANDSHAKE', 'end-to-end handshake failed', err);
      return;
    }
    this.#open();
  }

  /** The device's side: the first transport message must be the user's CONFIRM. */
  /** Opens one inner record; on failure the stream fails with `code` and `message`. */
  #decrypt(record: Buffer, code: 'ERR_E2E_HANDSHAKE' | 'ERR_E2E_RECORD', message: string): Uint8Array | undefined {
    try {
      return this.#receive!.decryptWithAd(EMPTY, record);
    } catch (err) {
      this.#fail(code, message, err);
      return undefined;
    }
  }

  #onConfirm(message: Buffer): void {
    const plaintext = this.#decrypt(message, 'ERR_E2E_HANDSHAKE', 'end-to-end handshake failed: the user did not confirm it (a replayed first message?)');
    if (plaintext === undefined) return;
    if (plaintext.length !== 1 || plaintext[0] !== RecordType.CONFIRM) {
      this.#fail('ERR_E2E_HANDSHAKE', 'end-to-end handshake failed: the first record is not a confirmation');
      return;
    }
    this.#open();
  }

  #open(): void {
    this.#phase = 'open';
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const resume of waiting) resume();
    this.emit('open');
  }

  #onRecord(message: Buffer): void {
    const plaintext = this.#decrypt(message, 'ERR_E2E_RECORD', 'end-to-end record failed authentication (altered in transit)');
    if (plaintext === undefined) return;
    if (this.#endReceived || plaintext.length === 0) {
      this.#fail('ERR_E2E_RECORD', this.#endReceived ? 'data after the end of data' : 'empty record');
      return;
    }
    const type = plaintext[0];
    if (type === RecordType.END && plaintext.length === 1) {
      this.#endReceived = true;
      this.push(null);
      return;
    }
    if (type !== RecordType.DATA) {
      this.#fail('ERR_E2E_RECORD', `unexpected record type ${type}`);
      return;
    }
    const data = Buffer.from(plaintext.buffer, plaintext.byteOffset + 1, plaintext.length - 1);
    if (!this.push(data) && !this.#innerPaused) {
      this.#innerPaused = true;
      this.#inner.pause();
    }
  }

  override _read(): void {
    if (this.#innerPaused) {
      this.#innerPaused = false;
      this.#inner.resume();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#phase === 'handshake' || this.#phase === 'confirming') {
      this.#waiting.push(() => this._write(chunk, _encoding, callback));
      return;
    }
    if (this.#phase !== 'open') {
      callback(new E2EError('ERR_E2E_HANDSHAKE', 'end-to-end session is not open'));
      return;
    }
    let ok: boolean;
    try {
      ok = this.#writeData(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    if (ok) callback();
    else this.#inner.once('drain', () => callback());
  }

  /**
   * Seals `chunk` (after any held tail) into full records. A bulk write's short remainder is held
   * until the end of this event-loop turn so that the next write fills its record: a 64 KiB
   * socket read then costs about one record, not a full one and a small one. A write shorter
   * than a record goes out at once (no added latency for interactive traffic).
   */
  #writeData(chunk: Buffer): boolean {
    let ok = true;
    let parts: Buffer[] = this.#tail === undefined ? [chunk] : [this.#tail, chunk];
    let pending = (this.#tail?.length ?? 0) + chunk.length;
    const bulk = pending >= MAX_E2E_PAYLOAD_BYTES;
    this.#tail = undefined;
    while (pending >= MAX_E2E_PAYLOAD_BYTES || (!bulk && pending > 0)) {
      const take = Math.min(pending, MAX_E2E_PAYLOAD_BYTES);
      const [record, rest] = splitParts(parts, take);
      ok = this.#writeRecord(TYPE_DATA, record);
      parts = rest;
      pending -= take;
    }
    if (pending > 0) {
      this.#tail = parts.length === 1 ? parts[0]! : Buffer.concat(parts, pending);
      this.#tailTimer ??= setImmediate(() => {
        this.#tailTimer = undefined;
        this.#flushTail();
      });
    }
    return ok;
  }

  #flushTail(): void {
    if (this.#tailTimer !== undefined) {
      clearImmediate(this.#tailTimer);
      this.#tailTimer = undefined;
    }
    const tail = this.#tail;
    this.#tail = undefined;
    if (tail === undefined || this.destroyed || this.#phase !== 'open') return;
    try {
      this.#writeRecord(TYPE_DATA, [tail]);
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  #writeRecord(type: Uint8Array, payload: readonly Uint8Array[]): boolean {
    const ciphertext = this.#send!.encryptWithAd(EMPTY, [type, ...payload]);
    return this.#writeMessage(ciphertext);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#phase === 'handshake' || this.#phase === 'confirming') {
      this.#waiting.push(() => this._final(callback));
      return;
    }
    if (this.#phase !== 'open') {
      callback(new E2EError('ERR_E2E_HANDSHAKE', 'end-to-end session is not open'));
      return;
    }
    try {
      this.#flushTail();
      this.#writeRecord(TYPE_END, []);
    } catch (err) {
      callback(err as Error);
      return;
    }
    this.#endSent = true;
    this.#inner.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#timer);
    if (this.#tailTimer !== undefined) clearImmediate(this.#tailTimer);
    this.#tail = undefined;
    this.#timer = undefined;
    this.#waiting = [];
    const clean = err === null && this.#endReceived && this.#endSent;
    if (!clean && !this.#inner.destroyed) resetInner(this.#inner);
    this.#send?.destroy();
    this.#receive?.destroy();
    callback(err);
  }
}

/** Splits `parts` after `n` bytes (views, no copies). */
function splitParts(parts: readonly Buffer[], n: number): [Buffer[], Buffer[]] {
  const head: Buffer[] = [];
  let i = 0;
  let left = n;
  for (; i < parts.length && left > 0; i++) {
    const p = parts[i]!;
    if (p.length <= left) {
      head.push(p);
      left -= p.length;
      continue;
    }
    head.push(p.subarray(0, left));
    return [head, [p.subarray(left), ...parts.slice(i + 1)]];
  }
  return [head, parts.slice(i)];
}

/** A MuxStream is reset with a reason (the far end sees a RESET); other streams are destroyed. */
function resetInner(inner: Duplex): void {
  const withReset = inner as Duplex & { reset?: (reason: 'error') => void };
  if (typeof withReset.reset === 'function') withReset.reset('error');
  else inner.destroy();
}

/** The user's side: pins the device's key. Emits 'open' once the device has proven it. */
export function e2eInitiate(inner: Duplex, o: E2EInitiatorOptions): E2EStream {
  return new E2EStream(inner, true, o.staticKeyPair, o.service, o.deviceKey);
}

/**
 * The device's side: the user must prove `expectedUserKey`. Emits 'open' once the user has also
 * confirmed the handshake (its CONFIRM record): act on nothing before that.
 */
export function e2eRespond(inner: Duplex, o: E2EResponderOptions): E2EStream {
  return new E2EStream(inner, false, o.staticKeyPair, o.service, o.expectedUserKey);
}

/** True when `err` is one of this layer's failures. */
export function isE2EError(err: unknown): err is TwowayError {
  return err instanceof E2EError;
}
