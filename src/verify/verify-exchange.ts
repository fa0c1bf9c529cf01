/**
 * The verification exchange (docs/PROTOCOL.md section 13): JSON objects on a mux stream the
 * client daemon opens to the reserved target `twoway:verify`, each framed as a u32 big-endian
 * length (at most MAX_VERIFY_MESSAGE_BYTES) and that many bytes of UTF-8 JSON. One request, one
 * answer, in turn; a stream may carry several pairs. Every request carries `"v":1` and the
 * session's channel binding (base64url), which the server compares with its own.
 *
 * This file holds the framing (a resumable reader, the encoder) and the two ends of one stream:
 * `serveVerifyStream` (server: read a request, answer it, again, close when idle) and
 * `verifyRequest` (client: one request, one answer).
 */
import type { Duplex } from 'node:stream';
import { VerifyError } from '../errors.js';

/** The reserved stream target of the exchange: the server's dispatch takes it before any policy. */
export const VERIFY_TARGET = 'twoway:verify';
/** Exchange version in every request (`"v":1`). */
export const VERIFY_VERSION = 1;
/** Upper bound on one message's JSON bytes. */
export const MAX_VERIFY_MESSAGE_BYTES = 16 * 1024;
/** The server closes a verify stream with no request for this long. */
export const VERIFY_IDLE_MS = 60_000;
/** The client gives up on an answer after this long (an OIDC redemption may talk to the provider). */
export const VERIFY_ANSWER_TIMEOUT_MS = 30_000;
const LENGTH_BYTES = 4;
/** Requests read ahead of their answers before the server resets the stream (the peer ignored the turn-taking). */
const MAX_QUEUED_REQUESTS = 4;

export type VerifyMessage = Record<string, unknown>;

/** One message as framed on the stream: length (u32 BE) || JSON. Throws ERR_VERIFY_BAD_MESSAGE above the bound. */
export function encodeVerifyMessage(message: VerifyMessage): Buffer {
  const json = Buffer.from(JSON.stringify(message), 'utf8');
  if (json.length > MAX_VERIFY_MESSAGE_BYTES)
    throw new VerifyError('ERR_VERIFY_BAD_MESSAGE', `message of ${json.length} bytes exceeds ${MAX_VERIFY_MESSAGE_BYTES}`);
  const out = Buffer.alloc(LENGTH_BYTES + json.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, LENGTH_BYTES);
  return out;
}

/** Reassembles messages from arbitrary chunks. A length above the bound, bad JSON or a non-object throws ERR_VERIFY_BAD_MESSAGE. */
export class VerifyMessageReader {
  #buffered: Buffer[] = [];
  #size = 0;

  /** Feeds bytes; returns the messages now complete, in order. */
  push(chunk: Uint8Array): VerifyMessage[] {
    this.#buffered.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.#size += chunk.length;
    const out: VerifyMessage[] = [];
    for (;;) {
      if (this.#size < LENGTH_BYTES) return out;
      const all = this.#buffered.length === 1 ? this.#buffered[0]! : Buffer.concat(this.#buffered, this.#size);
      this.#buffered = [all];
      const length = all.readUInt32BE(0);
      if (length > MAX_VERIFY_MESSAGE_BYTES) throw new VerifyError('ERR_VERIFY_BAD_MESSAGE', `message length ${length} exceeds ${MAX_VERIFY_MESSAGE_BYTES}`);
      if (this.#size < LENGTH_BYTES + length) return out;
      out.push(parseMessage(all.subarray(LENGTH_BYTES, LENGTH_BYTES + length)));
      const rest = all.subarray(LENGTH_BYTES + length);
      this.#buffered = rest.length > 0 ? [rest] : [];
      this.#size = rest.length;
    }
  }

  /** Bytes of an unfinished message. */
  get pending(): number {
    return this.#size;
  }
}

function parseMessage(bytes: Buffer): VerifyMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new VerifyError('ERR_VERIFY_BAD_MESSAGE', 'message is not UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new VerifyError('ERR_VERIFY_BAD_MESSAGE', 'message is not a JSON object');
  return parsed as VerifyMessage;
}

/**
 * Server: answers the requests on `stream` one at a time with `answer` (a request that arrives
 * while one is answered waits; the reader is paused), ends the stream after `idleMs` without a
 * request. A malformed frame resets the stream.
 */
export function serveVerifyStream(stream: Duplex, answer: (request: VerifyMessage) => Promise<VerifyMessage>, idleMs = VERIFY_IDLE_MS): void {
  const reader = new VerifyMessageReader();
  const queue: VerifyMessage[] = [];
  let busy = false;
  let done = false;
  let idle: NodeJS.Timeout | undefined;
  const armIdle = (): void => {
    clearTimeout(idle);
    idle = setTimeout(() => finish(true), idleMs);
    idle.unref();
  };
  const finish = (end: boolean): void => {
    if (done) return;
    done = true;
    clearTimeout(idle);
    if (end) stream.end();
  };
  const next = (): void => {
    if (busy || done) return;
    const request = queue.shift();
    if (request === undefined) {
      stream.resume();
      armIdle();
      return;
    }
    busy = true;
    clearTimeout(idle);
    answer(request).then(
      (reply) => {
        busy = false;
        if (done) return;
        stream.write(encodeVerifyMessage(reply));
        next();
      },
      () => {
        busy = false;
        finish(false);
        stream.destroy();
      },
    );
  };
  stream.on('data', (chunk: Buffer) => {
    if (done) return;
    try {
      queue.push(...reader.push(chunk));
      if (queue.length > MAX_QUEUED_REQUESTS) throw new VerifyError('ERR_VERIFY_BAD_MESSAGE', 'too many requests ahead of their answers');
    } catch {
      finish(false);
      stream.destroy();
      return;
    }
    // One request in hand at a time: the peer cannot queue work faster than it is answered.
    if (queue.length > 0) stream.pause();
    next();
  });
  stream.on('end', () => finish(true));
  stream.on('error', () => finish(false));
  stream.on('close', () => finish(false));
  armIdle();
}

/**
 * Client: sends one request on a fresh `stream` and resolves with the answer, then ends the
 * stream. Rejects with the stream's error, ERR_VERIFY_BAD_MESSAGE, or after `timeoutMs`.
 */
export function verifyRequest(stream: Duplex, request: VerifyMessage, timeoutMs = VERIFY_ANSWER_TIMEOUT_MS): Promise<VerifyMessage> {
  return new Promise((resolve, reject) => {
    const reader = new VerifyMessageReader();
    let settled = false;
    const settle = (err: Error | undefined, answer?: VerifyMessage): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        stream.destroy();
        reject(err);
      } else {
        stream.end();
        stream.resume();
        resolve(answer!);
      }
    };
    const timer = setTimeout(() => settle(new VerifyError('ERR_VERIFY_BAD_MESSAGE', `no answer from the server within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    stream.on('data', (chunk: Buffer) => {
      try {
        const [answer] = reader.push(chunk);
        if (answer !== undefined) settle(undefined, answer);
      } catch (err) {
        settle(err as Error);
      }
    });
    stream.on('error', (err: Error) => settle(err));
    stream.on('end', () => settle(new VerifyError('ERR_VERIFY_BAD_MESSAGE', 'the server ended the verify stream without an answer')));
    stream.on('close', () => settle(new VerifyError('ERR_VERIFY_BAD_MESSAGE', 'the verify stream closed without an answer')));
    try {
      stream.write(encodeVerifyMessage(request));
    } catch (err) {
      settle(err as Error);
    }
  });
}
