/**
 * HandshakeState (Noise rev 34, section 5.3): runs any pattern of `patterns.ts` with psk
 * modifiers, one method per token.
 *
 *   write ⇄ read   (alternating per message, initiator starts in write)
 *     └──────────→ finished ──split()──→ split
 *   any failed read (or a failure inside a write) ──→ unusable
 *
 * Every public method starts with a state guard. A failed read leaves the state 'unusable': every
 * further call throws 'ERR_NOISE_UNUSABLE' and the secrets are wiped, so a tampered message can
 * never be retried against the same state.
 */

import { DH_BYTES, TAG_BYTES, type CryptoBackend, type DhPrivateKey, type DhPublicKey } from '../crypto/backend.js';
import { defaultBackend } from '../crypto/get-backend.js';
import { NoiseError, assertNever } from '../errors.js';
import type { CipherState } from './cipher-state.js';
import { MAX_MESSAGE_BYTES } from './constants.js';
import { checkKey, checkKeyPair, checkPsks, type HandshakeOptions } from './handshake-options.js';
import { messageLength, type MessageToken, type PreMessageToken } from './patterns.js';
import { parseProtocolName, type ProtocolSuite } from './protocol-name.js';
import { SymmetricState } from './symmetric-state.js';

export type { HandshakeOptions } from './handshake-options.js';

/** The transport keys after Split(), from this party's point of view. */
export interface TransportCipherStates {
  readonly send: CipherState;
  readonly receive: CipherState;
}

type HandshakeStateName = 'write' | 'read' | 'finished' | 'split' | 'unusable';

const EMPTY = new Uint8Array(0);

/** One party's Noise handshake; see the file header for its states. */
export class HandshakeState {
  readonly #suite: ProtocolSuite;
  readonly #initiator: boolean;
  readonly #backend: CryptoBackend;
  readonly #symmetric: SymmetricState;
  readonly #pskMode: boolean;
  #state: HandshakeStateName;
  #messageIndex = 0;
  #psks: Uint8Array[] = [];
  #psksUsed = 0;
  #s: DhPrivateKey | undefined;
  #e: DhPrivateKey | undefined;
  #ownsEphemeral = false;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #rsKey: DhPublicKey | undefined;
  #reKey: DhPublicKey | undefined;
  #finalHash: Uint8Array | undefined;

  /** Initialize(handshake_pattern, initiator, prologue, s, e, rs, re), psks included. */
  constructor(options: HandshakeOptions) {
    this.#suite = parseProtocolName(options.protocolName);
    this.#initiator = options.initiator === true;
    this.#backend = options.backend ?? defaultBackend;
    this.#pskMode = this.#suite.pskPositions.length > 0;
    const pattern = this.#suite.pattern;

    const ownPre = this.#initiator ? pattern.initiatorPreMessage : pattern.responderPreMessage;
    const remotePre = this.#initiator ? pattern.responderPreMessage : pattern.initiatorPreMessage;
    const sendsStatic = pattern.messages.some((m, i) => i % 2 === (this.#initiator ? 0 : 1) && m.includes('s'));
    if (options.s !== undefined) this.#s = this.#backend.importDhKey(checkKeyPair(options.s, 'local static'), true);
    // Fixed ephemerals only come from tests and vectors; letting the backend cache them is harmless.
    if (options.e !== undefined) this.#e = this.#backend.importDhKey(checkKeyPair(options.e, 'local ephemeral'), true);
    if (options.rs !== undefined) this.#rs = Uint8Array.from(checkKey(options.rs, 'remote static public key'));
    if (options.re !== undefined) this.#re = Uint8Array.from(checkKey(options.re, 'remote ephemeral public key'));
    if (this.#s === undefined && (ownPre.includes('s') || sendsStatic)) this.#missing('local static key pair (s)');
    if (this.#e === undefined && ownPre.includes('e')) this.#missing('local ephemeral key pair (e)');
    if (this.#rs === undefined && remotePre.includes('s')) this.#missing('remote static public key (rs)');
    if (this.#re === undefined && remotePre.includes('e')) this.#missing('remote ephemeral public key (re)');
    if (options.psks !== undefined && options.psks.length > 0) this.#psks = checkPsks(options.psks, this.#suite.pskPositions.length);

    this.#symmetric = new SymmetricState(this.#suite.name, this.#suite.cipher, this.#suite.hash, this.#backend);
    this.#symmetric.mixHash(options.prologue ?? EMPTY);
    // Section 5.3: pre-message keys are hashed initiator's first, whoever we are.
    this.#mixPreMessage(pattern.initiatorPreMessage, this.#initiator);
    this.#mixPreMessage(pattern.responderPreMessage, !this.#initiator);
    this.#state = this.#initiator ? 'write' : 'read';
  }

  /** True once the last handshake message has been written or read. */
  get isFinished(): boolean {
    return this.#state === 'finished' || this.#state === 'split';
  }

  /** The remote static public key, once known (a copy). */
  get remoteStaticPublicKey(): Uint8Array | undefined {
    return this.#rs === undefined ? undefined : Uint8Array.from(this.#rs);
  }

  /** GetHandshakeHash(): h (the final value once finished; still available after split()). */
  get handshakeHash(): Uint8Array {
    if (this.#finalHash !== undefined) return Uint8Array.from(this.#finalHash);
    this.#expect('write', 'read');
    return this.#symmetric.getHandshakeHash();
  }

  /** Supplies the psks (e.g. an IK responder after learning rs); allowed until a psk token ran. */
  setPsks(psks: readonly Uint8Array[]): void {
    this.#expect('write', 'read');
    if (this.#psksUsed > 0) throw new NoiseError('ERR_NOISE_WRONG_STATE', 'setPsks: a psk token was already processed');
    const checked = checkPsks(psks, this.#suite.pskPositions.length);
    for (const old of this.#psks) old.fill(0);
    this.#psks = checked;
  }

  /** WriteMessage(payload): the next handshake message. */
  writeMessage(payload: Uint8Array): Uint8Array {
    this.#expect('write');
    if (!(payload instanceof Uint8Array)) throw new TypeError('payload: expected a Uint8Array');
    const tokens = this.#suite.pattern.messages[this.#messageIndex]!;
    const length = messageLength(tokens, payload.length, this.#symmetric.hasKey(), this.#pskMode);
    if (length > MAX_MESSAGE_BYTES) {
      throw new NoiseError('ERR_NOISE_MESSAGE_TOO_LONG', `handshake message would be ${length} bytes, over ${MAX_MESSAGE_BYTES}`);
    }
    this.#checkPsksAvailable(tokens);
    try {
      const out = new Uint8Array(length);
      let offset = 0;
      for (const token of tokens) {
        const written = this.#writeToken(token);
        out.set(written, offset);
        offset += written.length;
      }
      const body = this.#symmetric.encryptAndHash(payload);
      out.set(body, offset);
      offset += body.length;
      if (offset !== length) throw new Error(`internal: message layout ${offset} != ${length}`);
      this.#advance();
      return out;
    } catch (err) {
      this.#fail();
      throw err;
    }
  }

  /** ReadMessage(message): the payload. Any failure makes the state unusable. */
  readMessage(message: Uint8Array): Uint8Array {
    this.#expect('read');
    if (!(message instanceof Uint8Array)) throw new TypeError('message: expected a Uint8Array');
    const tokens = this.#suite.pattern.messages[this.#messageIndex]!;
    this.#checkPsksAvailable(tokens);
    try {
      if (message.length > MAX_MESSAGE_BYTES) {
        throw new NoiseError('ERR_NOISE_MESSAGE_TOO_LONG', `handshake message of ${message.length} bytes, over ${MAX_MESSAGE_BYTES}`);
      }
      const minimum = messageLength(tokens, 0, this.#symmetric.hasKey(), this.#pskMode);
      if (message.length < minimum) {
        throw new NoiseError('ERR_NOISE_MESSAGE_TOO_SHORT', `handshake message of ${message.length} bytes, expected at least ${minimum}`);
      }
      let offset = 0;
      for (const token of tokens) offset += this.#readToken(token, message.subarray(offset));
      const payload = this.#symmetric.decryptAndHash(message.subarray(offset));
      this.#advance();
      return payload;
    } catch (err) {
      this.#fail();
      throw err;
    }
  }

  /**
   * Split(): the transport cipher states from this party's point of view. Wipes ck, h and the
   * ephemeral key; the handshake hash stays readable.
   */
  split(): TransportCipherStates {
    this.#expect('finished');
    const [c1, c2] = this.#symmetric.split();
    this.#wipe();
    this.#state = 'split';
    return this.#initiator ? { send: c1, receive: c2 } : { send: c2, receive: c1 };
  }

  // ---- tokens (section 5.3) ----

  #writeToken(token: MessageToken): Uint8Array {
    switch (token) {
      case 'e': {
        if (this.#e === undefined) {
          this.#e = this.#backend.generateDhKey();
          this.#ownsEphemeral = true;
        }
        const publicKey = this.#e.publicKey;
        this.#symmetric.mixHash(publicKey);
        if (this.#pskMode) this.#symmetric.mixKey(publicKey);
        return publicKey;
      }
      case 's':
        return this.#symmetric.encryptAndHash(this.#localStatic().publicKey);
      case 'ee':
      case 'es':
      case 'se':
      case 'ss':
        this.#mixDh(token);
        return EMPTY;
      case 'psk':
        this.#mixPsk();
        return EMPTY;
      default:
        return assertNever(token, 'token');
    }
  }

  /** Processes one token of an incoming message; returns the bytes it consumed. */
  #readToken(token: MessageToken, rest: Uint8Array): number {
    switch (token) {
      case 'e': {
        if (this.#re !== undefined) throw new NoiseError('ERR_NOISE_WRONG_STATE', 'remote ephemeral key received twice');
        const re = Uint8Array.from(rest.subarray(0, DH_BYTES));
        this.#re = re;
        this.#symmetric.mixHash(re);
        if (this.#pskMode) this.#symmetric.mixKey(re);
        return DH_BYTES;
      }
      case 's': {
        if (this.#rs !== undefined) throw new NoiseError('ERR_NOISE_WRONG_STATE', 'remote static key received twice');
        const length = DH_BYTES + (this.#symmetric.hasKey() ? TAG_BYTES : 0);
        this.#rs = Uint8Array.from(this.#symmetric.decryptAndHash(rest.subarray(0, length)));
        return length;
      }
      case 'ee':
      case 'es':
      case 'se':
      case 'ss':
        this.#mixDh(token);
        return 0;
      case 'psk':
        this.#mixPsk();
        return 0;
      default:
        return assertNever(token, 'token');
    }
  }

  /** ee, es, se, ss: MixKey(DH(...)); the first letter names the initiator's key, the second the responder's. */
  #mixDh(token: 'ee' | 'es' | 'se' | 'ss'): void {
    const initiatorKey = token[0] as 'e' | 's';
    const responderKey = token[1] as 'e' | 's';
    const local = this.#initiator ? initiatorKey : responderKey;
    const remote = this.#initiator ? responderKey : initiatorKey;
    const localKey = local === 'e' ? this.#localEphemeral() : this.#localStatic();
    const remoteKey = remote === 'e' ? this.#remoteEphemeral() : this.#remoteStatic();
    const shared = this.#backend.dh(localKey, remoteKey);
    this.#symmetric.mixKey(shared);
    shared.fill(0);
  }

  /** psk: MixKeyAndHash(psk) (section 9.1). */
  #mixPsk(): void {
    const psk = this.#psks[this.#psksUsed];
    if (psk === undefined) this.#missing('psk');
    this.#psksUsed += 1;
    this.#symmetric.mixKeyAndHash(psk);
  }

  // ---- helpers ----

  #mixPreMessage(tokens: readonly PreMessageToken[], ours: boolean): void {
    for (const token of tokens) {
      const key = token === 's' ? (ours ? this.#s?.publicKey : this.#rs) : ours ? this.#e?.publicKey : this.#re;
      if (key === undefined) this.#missing(`pre-message key ${token}`);
      this.#symmetric.mixHash(key);
      // Section 9.2: in psk handshakes an "e" pre-message also calls MixKey.
      if (token === 'e' && this.#pskMode) this.#symmetric.mixKey(key);
    }
  }

  #checkPsksAvailable(tokens: readonly MessageToken[]): void {
    let needed = this.#psksUsed;
    for (const token of tokens) if (token === 'psk') needed += 1;
    if (needed > this.#psks.length) this.#missing('psk (call setPsks first)');
  }

  #localStatic(): DhPrivateKey {
    return this.#s ?? this.#missing('local static key pair (s)');
  }

  #localEphemeral(): DhPrivateKey {
    return this.#e ?? this.#missing('local ephemeral key (e)');
  }

  #remoteStatic(): DhPublicKey {
    if (this.#rsKey === undefined) {
      if (this.#rs === undefined) this.#missing('remote static public key (rs)');
      this.#rsKey = this.#backend.importPublicKey(this.#rs, true);
    }
    return this.#rsKey;
  }

  #remoteEphemeral(): DhPublicKey {
    if (this.#reKey === undefined) {
      if (this.#re === undefined) this.#missing('remote ephemeral public key (re)');
      this.#reKey = this.#backend.importPublicKey(this.#re, false);
    }
    return this.#reKey;
  }

  #missing(what: string): never {
    throw new NoiseError('ERR_NOISE_MISSING_KEY', `missing ${what} for ${this.#suite.pattern.name}`);
  }

  #advance(): void {
    this.#messageIndex += 1;
    if (this.#messageIndex === this.#suite.pattern.messages.length) {
      this.#finalHash = this.#symmetric.getHandshakeHash();
      this.#state = 'finished';
    } else {
      this.#state = this.#state === 'write' ? 'read' : 'write';
    }
  }

  #expect(...allowed: HandshakeStateName[]): void {
    const state = this.#state;
    if (allowed.includes(state)) return;
    if (state === 'unusable') throw new NoiseError('ERR_NOISE_UNUSABLE', 'handshake state is unusable after a failure');
    throw new NoiseError('ERR_NOISE_WRONG_STATE', `handshake is in state ${state}; expected ${allowed.join(' or ')}`);
  }

  #fail(): void {
    this.#state = 'unusable';
    this.#wipe();
  }

  #wipe(): void {
    this.#symmetric.wipe();
    for (const psk of this.#psks) psk.fill(0);
    this.#psks = [];
    if (this.#e !== undefined && this.#ownsEphemeral) this.#backend.releaseDhKey(this.#e);
    this.#e = undefined;
    this.#reKey = undefined;
  }
}
