/**
 * KeySchedule: the keys of one session and their lifecycle. Seals and opens records under the
 * current key phase and runs the in-band rekey (rekey.ts) so that the switch lands on a marked
 * record boundary in each direction:
 *
 *   idle --startRekey--> initiated --completeRekey--> idle          (initiator: the client)
 *   idle --respondToRekey--> switching --first record in new phase--> idle   (responder)
 *
 * Every method that produces bytes returns a whole sealed record (header and ciphertext parts),
 * so the caller cannot send a record out of nonce order.
 */
import type { HandshakeState } from '../noise/handshake-state.js';
import { SessionError } from '../errors.js';
import { PHASE_HEADERS, RecordType, TYPE_BYTES, parseRecordHeader } from './record.js';
import { readRekeyResponse, respondToRekey, writeRekeyInitiation, type CipherState, type StaticKeyPair, type TransportKeys } from './rekey.js';
import { MAX_RECORD_BYTES, MIN_RECORD_BYTES, type WireProtocol } from './wire.js';

export type RekeyState = 'idle' | 'initiated' | 'switching';

export interface KeyScheduleOptions {
  readonly initiator: boolean;
  readonly keys: TransportKeys;
  readonly handshakeHash: Uint8Array;
  readonly wire: WireProtocol;
  readonly localStatic: StaticKeyPair;
  readonly remoteStatic: Uint8Array;
  /** The psk for the next rekey; undefined (responder) when the peer's key was revoked. */
  rekeyPsk(): Uint8Array | undefined;
}

export interface OpenedRecord {
  readonly plaintext: Uint8Array;
  /** True when this record was the peer's first under the new key (rekey complete). */
  readonly switched: boolean;
}

type Phase = 0 | 1;

/**
 * A sealed record: the header byte and the ciphertext in one array, written there by the cipher
 * (no join of header and ciphertext afterwards: one 64 KiB allocation and copy fewer per record).
 */
export type SealedRecord = Uint8Array;

function unexpected(what: string): SessionError {
  return new SessionError('ERR_SESSION_BAD_MESSAGE', `unexpected ${what}`);
}

export class KeySchedule {
  readonly #opts: KeyScheduleOptions;
  #rekey: RekeyState = 'idle';
  #rekeyHandshake: HandshakeState | undefined;
  #rekeyRequested = false;
  #handshakeHash: Uint8Array;
  #send: CipherState;
  #sendPhase: Phase = 0;
  #sentUnderKey = 0;
  #receive: CipherState;
  #receivePhase: Phase = 0;
  #nextReceive: CipherState | undefined;
  #receivedUnderKey = 0;

  constructor(opts: KeyScheduleOptions) {
    this.#opts = opts;
    this.#send = opts.keys.send;
    this.#receive = opts.keys.receive;
    this.#handshakeHash = opts.handshakeHash.slice();
  }

  get rekeyState(): RekeyState {
    return this.#rekey;
  }

  /** Records sealed under the current send key. */
  get sentUnderKey(): number {
    return this.#sentUnderKey;
  }

  /** Records opened under the current receive key. */
  get receivedUnderKey(): number {
    return this.#receivedUnderKey;
  }

  /** Seals `parts` (the type byte first) into one record under the current send key. */
  seal(parts: readonly Uint8Array[]): SealedRecord {
    const phase = this.#sendPhase;
    const record = this.#send.encryptWithAdAfter(PHASE_HEADERS[phase], parts as Uint8Array[], PHASE_HEADERS[phase]);
    this.#sentUnderKey++;
    return record;
  }

  /**
   * Authenticates and decrypts a whole record before any byte of it is used (SECURITY.md #2). The
   * record is the transport's message, handed over to us (channel.ts): the plaintext may be
   * written over its ciphertext.
   */
  open(record: Uint8Array): OpenedRecord {
    if (record.length > MAX_RECORD_BYTES) {
      throw new SessionError('ERR_SESSION_RECORD_TOO_LARGE', `record of ${record.length} bytes`);
    }
    if (record.length < MIN_RECORD_BYTES) throw new SessionError('ERR_SESSION_BAD_MESSAGE', `record of ${record.length} bytes`);
    const phase = parseRecordHeader(record[0]!);
    if (phase === this.#receivePhase) {
      const plaintext = this.#receive.decryptWithAd(PHASE_HEADERS[phase], record.subarray(1), true);
      this.#receivedUnderKey++;
      return { plaintext, switched: false };
    }
    const next = this.#nextReceive;
    if (next === undefined) throw unexpected('key phase');
    const plaintext = next.decryptWithAd(PHASE_HEADERS[phase], record.subarray(1), true);
    // The peer's first record under the new key: retire the old receive key.
    this.#receive.destroy();
    this.#receive = next;
    this.#receivePhase = phase;
    this.#nextReceive = undefined;
    this.#receivedUnderKey = 1;
    this.#rekey = 'idle';
    return { plaintext, switched: true };
  }

  /** Initiator: the rekey-init record, or undefined while a rekey is in flight. */
  startRekey(): SealedRecord | undefined {
    if (!this.#opts.initiator || this.#rekey !== 'idle') return undefined;
    const psk = this.#opts.rekeyPsk();
    if (psk === undefined) return undefined;
    const { message, state } = writeRekeyInitiation(this.#context(), psk);
    this.#rekeyHandshake = state;
    this.#rekey = 'initiated';
    return this.seal([TYPE_BYTES[RecordType.rekeyInit], message]);
  }

  /** Responder: a rekey-request record, at most once per key. */
  requestRekey(): SealedRecord | undefined {
    if (this.#opts.initiator || this.#rekey !== 'idle' || this.#rekeyRequested) return undefined;
    this.#rekeyRequested = true;
    return this.seal([TYPE_BYTES[RecordType.rekeyRequest]]);
  }

  /** Initiator: consumes rekey-response, switches both directions, returns a keepalive under the new key. */
  completeRekey(body: Uint8Array): SealedRecord {
    if (!this.#opts.initiator || this.#rekey !== 'initiated') throw unexpected('rekey-response');
    const state = this.#rekeyHandshake!;
    this.#rekeyHandshake = undefined;
    const { keys, handshakeHash } = readRekeyResponse(state, body);
    this.#send.destroy();
    this.#receive.destroy();
    this.#send = keys.send;
    this.#sendPhase = (this.#sendPhase ^ 1) as Phase;
    this.#sentUnderKey = 0;
    this.#receive = keys.receive;
    this.#receivePhase = (this.#receivePhase ^ 1) as Phase;
    this.#receivedUnderKey = 0;
    this.#handshakeHash = handshakeHash;
    this.#rekey = 'idle';
    // The first record under the new key tells the responder to retire its old receive key.
    return this.seal([TYPE_BYTES[RecordType.keepalive]]);
  }

  /** Responder: consumes rekey-init; returns the response record (under the old key) or 'revoked'. */
  respondToRekey(body: Uint8Array): SealedRecord | 'revoked' {
    if (this.#opts.initiator || this.#rekey !== 'idle') throw unexpected('rekey-init');
    const result = respondToRekey(this.#context(), body, () => this.#opts.rekeyPsk());
    if (result === 'revoked') return 'revoked';
    const record = this.seal([TYPE_BYTES[RecordType.rekeyResponse], result.message]);
    this.#send.destroy();
    this.#send = result.keys.send;
    this.#sendPhase = (this.#sendPhase ^ 1) as Phase;
    this.#sentUnderKey = 0;
    this.#nextReceive = result.keys.receive;
    this.#handshakeHash = result.handshakeHash;
    this.#rekey = 'switching';
    this.#rekeyRequested = false;
    return record;
  }

  /** Destroys every key (the session closed). */
  discard(): void {
    this.#rekeyHandshake = undefined;
    this.#send.destroy();
    this.#receive.destroy();
    this.#nextReceive?.destroy();
    this.#nextReceive = undefined;
  }

  #context() {
    return {
      wire: this.#opts.wire,
      previousHandshakeHash: this.#handshakeHash,
      localStatic: this.#opts.localStatic,
      remoteStatic: this.#opts.remoteStatic,
    };
  }
}
