/**
 * SecureSession: the encrypted record layer over a transport MessageChannel, offered upward as a
 * MessageChannel of plaintext messages. One record per transport message; implicit nonces per
 * direction and key (key-schedule.ts); any failure closes the session (SECURITY.md #9: no
 * resynchronising).
 *
 *   confirming --first valid record--> established --close/failure--> closed
 *   (responder only)                   (initiator starts here)
 */
import type { Logger } from 'pino';
import type { CloseReason, MessageChannel } from '../channel.js';
import { SessionError, TwowayError, assertNever } from '../errors.js';
import { KeySchedule, type SealedRecord } from './key-schedule.js';
import type { SessionLimits } from './session-limits.js';
import { REJECT_AFTER_RECORDS } from './session-limits.js';
import { RecordType, TYPE_BYTES, decodeCloseBody, encodeCloseBody, parseRecordType } from './record.js';
import type { StaticKeyPair, TransportKeys } from './rekey.js';
import { SessionTimers } from './timers.js';
import { MAX_DATA_BYTES, type WireProtocol } from './wire.js';
import { EVENTS } from '../log/events.js';
import { blake2s } from '../crypto/blake2s.js';

/** Domain label of the channel binding (docs/PROTOCOL.md section 13). */
const BINDING_LABEL = new TextEncoder().encode('twoway verify binding v1');

/**
 * The channel binding of a session: BLAKE2s-256("twoway verify binding v1" || h), where h is the
 * handshake hash of the session's first handshake (rekeys do not change it). Both ends compute
 * the same 32 bytes; no other session has them (docs/PROTOCOL.md section 13).
 */
export function channelBinding(handshakeHash: Uint8Array): Uint8Array {
  const input = new Uint8Array(BINDING_LABEL.length + handshakeHash.length);
  input.set(BINDING_LABEL, 0);
  input.set(handshakeHash, BINDING_LABEL.length);
  return blake2s(input);
}

export type SessionState = 'confirming' | 'established' | 'closed';

export interface SessionStats {
  /** Record bytes on the wire, headers and tags included. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly lastHandshakeAt: Date;
  readonly rekeys: number;
}

/** The secure channel handed to the layer above (after key confirmation on the server). */
export interface SecureSession extends MessageChannel {
  /** Server side: the allowlist name; client side: 'server'. */
  readonly peerName: string;
  readonly peerPublicKey: Uint8Array;
  readonly remoteAddress: string;
  readonly establishedAt: Date;
  readonly stats: SessionStats;
  /** The channel binding of the first handshake (`channelBinding`): what a user verification is bound to. */
  readonly binding: Uint8Array;
}

export interface SecureSessionOptions {
  readonly initiator: boolean;
  readonly transport: MessageChannel;
  readonly keys: TransportKeys;
  readonly handshakeHash: Uint8Array;
  readonly wire: WireProtocol;
  readonly localStatic: StaticKeyPair;
  readonly remoteStatic: Uint8Array;
  readonly peerName: string;
  readonly remoteAddress: string;
  readonly limits: SessionLimits;
  /** Bound with the peer's `peer`, `fingerprint` and `remote` (lines here do not repeat them). */
  readonly logger: Logger;
  /** The psk for the next rekey (initiator: its own; responder: the peer's current one, or undefined when revoked). */
  rekeyPsk(): Uint8Array | undefined;
  /** Responder: the first valid record confirmed the client's keys. */
  onConfirmed?(session: RecordLayer): void;
  /** Called once after the session closed (before the onClose handler runs). */
  onClosed?(session: RecordLayer, reason: CloseReason, wasConfirmed: boolean): void;
}

/** Maps a failure while opening or handling a record to the close it causes. */
function closeReasonFor(err: unknown): CloseReason {
  if (err instanceof TwowayError) {
    const message = err.code === 'ERR_NOISE_DECRYPT' ? 'record failed authentication' : `${err.code}: ${err.message}`;
    return { code: 'protocol-error', message };
  }
  return { code: 'protocol-error', message: 'record handling failed' };
}

/** The SecureSession the handshake drivers hand out: the record layer sealing and opening records on one transport channel. */
export class RecordLayer implements SecureSession {
  readonly peerName: string;
  readonly peerPublicKey: Uint8Array;
  readonly remoteAddress: string;
  readonly binding: Uint8Array;
  establishedAt: Date;
  readonly #opts: SecureSessionOptions;
  readonly #transport: MessageChannel;
  readonly #timers: SessionTimers;
  readonly #log: Logger;
  readonly #keys: KeySchedule;
  #state: SessionState;
  #rekeyQueued = false;
  #pending: Uint8Array[] | undefined = [];
  #onMessage: ((message: Uint8Array) => void) | undefined;
  #onDrain: () => void = () => {};
  #onClose: ((reason: CloseReason) => void) | undefined;
  #closeReason: CloseReason | undefined;
  #closeFired = false;
  readonly #stats = { bytesIn: 0, bytesOut: 0, recordsIn: 0, recordsOut: 0, lastHandshakeAt: new Date(), rekeys: 0 };

  constructor(opts: SecureSessionOptions) {
    this.#opts = opts;
    this.#transport = opts.transport;
    this.peerName = opts.peerName;
    this.peerPublicKey = opts.remoteStatic.slice();
    this.remoteAddress = opts.remoteAddress;
    this.binding = channelBinding(opts.handshakeHash);
    this.establishedAt = new Date();
    this.#log = opts.logger;
    this.#state = opts.initiator ? 'established' : 'confirming';
    this.#keys = new KeySchedule(opts);
    this.#timers = new SessionTimers(opts.limits, opts.initiator, {
      sendKeepalive: () => this.#transmit([TYPE_BYTES[RecordType.keepalive]]),
      peerDead: () => this.close({ code: 'timeout', message: `no authenticated record for ${opts.limits.deadAfterMs} ms` }),
      rekeyDue: () => this.#rekeyDue(),
      keysExpired: () => this.close({ code: 'timeout', message: `keys older than ${opts.limits.rejectAfterMs} ms` }),
    });
    this.#timers.onHandshakeComplete();
    this.#transport.onMessage((record) => this.#handleRecord(record));
    this.#transport.onDrain(() => this.#onDrain());
    this.#transport.onClose((reason) => this.#finish(reason));
  }

  get state(): SessionState {
    return this.#state;
  }

  get stats(): SessionStats {
    return { ...this.#stats, lastHandshakeAt: new Date(this.#stats.lastHandshakeAt) };
  }

  get bufferedAmount(): number {
    return this.#transport.bufferedAmount;
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** True while a session timer is armed (tests: nothing left after close). */
  get timersActive(): boolean {
    return this.#timers.active;
  }

  /** Sends one message as one data record. Throws ERR_SESSION_RECORD_TOO_LARGE above MAX_DATA_BYTES. */
  send(message: Uint8Array | readonly Uint8Array[]): boolean {
    if (this.#state !== 'established') return false;
    let parts: Uint8Array[];
    let size: number;
    if (message instanceof Uint8Array) {
      parts = [TYPE_BYTES[RecordType.data], message];
      size = message.length;
    } else {
      parts = [TYPE_BYTES[RecordType.data], ...message];
      size = 0;
      for (const p of message) size += p.length;
    }
    if (size > MAX_DATA_BYTES) {
      throw new SessionError('ERR_SESSION_RECORD_TOO_LARGE', `message of ${size} bytes exceeds ${MAX_DATA_BYTES}`);
    }
    return this.#transmit(parts);
  }

  onMessage(handler: (message: Uint8Array) => void): void {
    this.#onMessage = handler;
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined && pending.length > 0) {
      queueMicrotask(() => {
        for (const m of pending) if (this.#state !== 'closed') handler(m);
      });
    }
  }

  onDrain(handler: () => void): void {
    this.#onDrain = handler;
  }

  onClose(handler: (reason: CloseReason) => void): void {
    this.#onClose = handler;
    if (this.#closeReason !== undefined) this.#fireClose();
  }

  /**
   * Sends an encrypted close record (best effort), then closes the transport. `reason.remote`
   * says the peer asked for the close at another layer (a GOAWAY), and is logged as such.
   */
  close(reason: CloseReason = { code: 'normal' }): void {
    if (this.#state === 'closed') return;
    try {
      this.#transmit([TYPE_BYTES[RecordType.close], encodeCloseBody(reason.code, reason.message)]);
    } catch {
      // The keys may be exhausted; the transport close below still ends the session.
    }
    this.#finish({ ...reason, remote: reason.remote === true });
    this.#transport.close(reason);
  }

  /** Sends an empty control record of `type` (the client's key-confirmation keepalive). */
  sendControl(type: typeof RecordType.keepalive): void {
    this.#transmit([TYPE_BYTES[type]]);
  }

  // --- sending --------------------------------------------------------------------------------

  /** Seals and sends one record of `parts` (type byte first). */
  #transmit(parts: readonly Uint8Array[]): boolean {
    if (this.#state === 'closed') return false;
    return this.#sendRecord(this.#keys.seal(parts));
  }

  #sendRecord(record: SealedRecord | undefined): boolean {
    if (record === undefined || this.#state === 'closed') return false;
    this.#stats.recordsOut++;
    this.#stats.bytesOut += record.length;
    this.#timers.onDataSent();
    const sent = this.#keys.sentUnderKey;
    if (sent >= this.#opts.limits.rekeyAfterRecords && this.#keys.rekeyState === 'idle' && !this.#rekeyQueued) {
      // Deferred: a rekey record sealed now would overtake the record being sent.
      this.#rekeyQueued = true;
      queueMicrotask(() => {
        this.#rekeyQueued = false;
        this.#rekeyDue();
      });
    }
    if (sent >= REJECT_AFTER_RECORDS) {
      queueMicrotask(() => this.close({ code: 'protocol-error', message: 'send key exhausted without rekey' }));
    }
    return this.#transport.send(record);
  }

  // --- receiving ------------------------------------------------------------------------------

  #handleRecord(record: Uint8Array): void {
    if (this.#state === 'closed') return;
    try {
      this.#openRecord(record);
    } catch (err) {
      // A typed error is the peer's fault; anything else is ours (or the layer above's handler).
      if (!(err instanceof TwowayError)) this.#log.error({ event: EVENTS.internalError, err }, 'record handling threw');
      this.close(closeReasonFor(err));
    }
  }

  #openRecord(record: Uint8Array): void {
    const { plaintext, switched } = this.#keys.open(record);
    if (switched) this.#rekeyCompleted();
    if (this.#keys.receivedUnderKey >= REJECT_AFTER_RECORDS) {
      throw new SessionError('ERR_SESSION_BAD_MESSAGE', 'peer exhausted its key without rekey');
    }
    this.#timers.onRecordReceived();
    this.#stats.recordsIn++;
    this.#stats.bytesIn += record.length;
    if (this.#state === 'confirming') {
      this.#state = 'established';
      this.establishedAt = new Date();
      this.#opts.onConfirmed?.(this);
    }
    this.#dispatch(parseRecordType(plaintext[0]), plaintext.subarray(1));
  }

  #dispatch(type: RecordType, body: Uint8Array): void {
    switch (type) {
      case RecordType.data:
        if (this.#onMessage !== undefined) this.#onMessage(body);
        else this.#pending?.push(body);
        return;
      case RecordType.keepalive:
        this.#expectEmpty(body, 'keepalive');
        return;
      case RecordType.rekeyInit: {
        const response = this.#keys.respondToRekey(body);
        if (response === 'revoked') this.close({ code: 'revoked', message: 'peer key no longer allowed' });
        else this.#sendRecord(response);
        return;
      }
      case RecordType.rekeyResponse:
        this.#sendRecord(this.#keys.completeRekey(body));
        this.#rekeyCompleted();
        return;
      case RecordType.rekeyRequest:
        if (!this.#opts.initiator) throw new SessionError('ERR_SESSION_BAD_MESSAGE', 'unexpected rekey-request');
        this.#expectEmpty(body, 'rekey-request');
        this.#sendRecord(this.#keys.startRekey());
        return;
      case RecordType.close: {
        const { code, message } = decodeCloseBody(body);
        this.#finish({ code, ...(message !== undefined ? { message } : {}), remote: true });
        this.#transport.close({ code: 'normal' });
        return;
      }
      default:
        assertNever(type, 'record type');
    }
  }

  #expectEmpty(body: Uint8Array, what: string): void {
    if (body.length !== 0) throw new SessionError('ERR_SESSION_BAD_MESSAGE', `${what} record with a body`);
  }

  // --- rekey ----------------------------------------------------------------------------------

  #rekeyDue(): void {
    if (this.#state !== 'established') return;
    this.#sendRecord(this.#opts.initiator ? this.#keys.startRekey() : this.#keys.requestRekey());
  }

  #rekeyCompleted(): void {
    this.#stats.rekeys++;
    this.#stats.lastHandshakeAt = new Date();
    this.#timers.onHandshakeComplete();
    this.#log.debug({ event: EVENTS.sessionRekey, rekeys: this.#stats.rekeys }, 'session rekeyed');
  }

  // --- closing --------------------------------------------------------------------------------

  #finish(reason: CloseReason): void {
    if (this.#state === 'closed') return;
    const wasConfirmed = this.#state === 'established';
    this.#state = 'closed';
    this.#closeReason = reason;
    this.#pending = undefined;
    this.#keys.discard();
    this.#timers.stop();
    if (wasConfirmed) {
      this.#log.info(
        {
          event: EVENTS.sessionClosed,
          reason: reason.code,
          remoteClose: reason.remote === true,
          detail: reason.message,
          bytesIn: this.#stats.bytesIn,
          bytesOut: this.#stats.bytesOut,
          durationMs: Date.now() - this.establishedAt.getTime(),
        },
        `session closed (${reason.code}${reason.message ? `: ${reason.message}` : ''})`,
      );
    }
    this.#opts.onClosed?.(this, reason, wasConfirmed);
    this.#fireClose();
  }

  #fireClose(): void {
    if (this.#closeFired || this.#onClose === undefined || this.#closeReason === undefined) return;
    this.#closeFired = true;
    const handler = this.#onClose;
    const reason = this.#closeReason;
    setImmediate(() => handler(reason));
  }
}
