import { describe, expect, it } from 'vitest';
import { getBackend } from '../../../src/crypto/get-backend.js';
import { InputError } from '../../../src/errors.js';
import { MAX_MESSAGE_BYTES } from '../../../src/noise/constants.js';
import { HandshakeState } from '../../../src/noise/handshake-state.js';
import { IK, PROLOGUE, expectCode, flipBit, ikParties } from '../../helpers/noise-parties.js';

const enc = new TextEncoder();

describe.each(['node', 'noble'] as const)('HandshakeState (%s backend)', (name) => {
  const backend = getBackend(name);

  it('completes IKpsk2 with a late responder psk and agrees on keys and hash', () => {
    const { initiator, responder, client, psk } = ikParties(backend, true);
    const m1 = initiator.writeMessage(enc.encode('hello'));
    expect(m1.length).toBe(32 + 48 + 5 + 16);
    expect(Buffer.from(responder.readMessage(m1)).toString()).toBe('hello');
    expect(Buffer.from(responder.remoteStaticPublicKey!)).toEqual(Buffer.from(client.publicKey));
    responder.setPsks([psk]);
    const m2 = responder.writeMessage(new Uint8Array(0));
    expect(m2.length).toBe(32 + 16);
    initiator.readMessage(m2);
    expect(initiator.isFinished && responder.isFinished).toBe(true);
    expect(Buffer.from(initiator.handshakeHash)).toEqual(Buffer.from(responder.handshakeHash));
    const a = initiator.split();
    const b = responder.split();
    // The handshake hash stays readable after split (channel binding).
    expect(initiator.handshakeHash.length).toBe(32);
    const record = a.send.encryptWithAd(new Uint8Array(0), [enc.encode('ab'), enc.encode('cd')]);
    expect(Buffer.from(b.receive.decryptWithAd(new Uint8Array(0), record)).toString()).toBe('abcd');
    const back = b.send.encryptWithAd(Uint8Array.of(1), enc.encode('back'));
    expect(Buffer.from(a.receive.decryptWithAd(Uint8Array.of(1), back)).toString()).toBe('back');
    expectCode(() => initiator.split(), 'ERR_NOISE_WRONG_STATE');
    expectCode(() => initiator.writeMessage(new Uint8Array(0)), 'ERR_NOISE_WRONG_STATE');
  });

  it('rejects a tampered handshake message at every byte and becomes unusable', () => {
    const server = backend.generateKeyPair();
    const client = backend.generateKeyPair();
    const psk = new Uint8Array(32).fill(1);
    const make = () => ({
      i: new HandshakeState({ protocolName: IK, initiator: true, prologue: PROLOGUE, s: client, rs: server.publicKey, psks: [psk], backend }),
      r: new HandshakeState({ protocolName: IK, initiator: false, prologue: PROLOGUE, s: server, psks: [psk], backend }),
    });
    const first = make();
    const message = first.i.writeMessage(enc.encode('payload'));
    // Ephemeral key (hashed, so later decryption fails), encrypted static key and its tag, payload tag.
    for (const index of [0, 31, 32, 40, 79, 80, message.length - 1]) {
      const { r } = make();
      expectCode(() => r.readMessage(flipBit(message, index)), 'ERR_NOISE_DECRYPT');
      expectCode(() => r.readMessage(message), 'ERR_NOISE_UNUSABLE');
      expectCode(() => r.writeMessage(new Uint8Array(0)), 'ERR_NOISE_UNUSABLE');
      expectCode(() => r.handshakeHash, 'ERR_NOISE_UNUSABLE');
    }
    // The untouched message still works on a fresh responder.
    expect(Buffer.from(make().r.readMessage(message)).toString()).toBe('payload');
  });

  it('rejects a tampered second message (psk2 tag) on the initiator', () => {
    const { initiator, responder } = ikParties(backend);
    responder.readMessage(initiator.writeMessage(new Uint8Array(0)));
    const m2 = responder.writeMessage(enc.encode('x'));
    expectCode(() => initiator.readMessage(flipBit(m2, m2.length - 1)), 'ERR_NOISE_DECRYPT');
    expectCode(() => initiator.readMessage(m2), 'ERR_NOISE_UNUSABLE');
  });

  it('rejects truncated messages as too short', () => {
    const { initiator, responder } = ikParties(backend);
    const m1 = initiator.writeMessage(new Uint8Array(0));
    expectCode(() => responder.readMessage(m1.subarray(0, 95)), 'ERR_NOISE_MESSAGE_TOO_SHORT');
    expectCode(() => responder.readMessage(m1), 'ERR_NOISE_UNUSABLE');
    const second = ikParties(backend);
    expectCode(() => second.responder.readMessage(new Uint8Array(0)), 'ERR_NOISE_MESSAGE_TOO_SHORT');
  });

  it('fails with a different prologue, psk or remote static key', () => {
    const server = backend.generateKeyPair();
    const client = backend.generateKeyPair();
    const psk = new Uint8Array(32).fill(3);
    const initiator = (rs: Uint8Array, prologue: Uint8Array) =>
      new HandshakeState({ protocolName: IK, initiator: true, prologue, s: client, rs, psks: [psk], backend });
    const responder = (psks: Uint8Array[], prologue = PROLOGUE) =>
      new HandshakeState({ protocolName: IK, initiator: false, prologue, s: server, psks, backend });

    // Wrong prologue: the first encrypted field (s) fails.
    expectCode(() => responder([psk]).readMessage(initiator(server.publicKey, enc.encode('other')).writeMessage(new Uint8Array(0))), 'ERR_NOISE_DECRYPT');
    // Wrong remote static: the initiator encrypted to someone else.
    const stranger = backend.generateKeyPair();
    expectCode(() => responder([psk]).readMessage(initiator(stranger.publicKey, PROLOGUE).writeMessage(new Uint8Array(0))), 'ERR_NOISE_DECRYPT');
    // Wrong psk: message 1 reads fine (psk2 is not used yet) and the initiator rejects message 2.
    const i = initiator(server.publicKey, PROLOGUE);
    const r = responder([new Uint8Array(32).fill(4)]);
    r.readMessage(i.writeMessage(new Uint8Array(0)));
    expectCode(() => i.readMessage(r.writeMessage(new Uint8Array(0))), 'ERR_NOISE_DECRYPT');
  });

  it('enforces the 65535-byte message limit on write and read', () => {
    const { initiator, responder } = ikParties(backend);
    const overhead = 32 + 48 + 16;
    expectCode(() => initiator.writeMessage(new Uint8Array(MAX_MESSAGE_BYTES - overhead + 1)), 'ERR_NOISE_MESSAGE_TOO_LONG');
    // A refused write is a caller error before any state change: the exact maximum still works.
    const m1 = initiator.writeMessage(new Uint8Array(MAX_MESSAGE_BYTES - overhead));
    expect(m1.length).toBe(MAX_MESSAGE_BYTES);
    expectCode(() => responder.readMessage(new Uint8Array(MAX_MESSAGE_BYTES + 1)), 'ERR_NOISE_MESSAGE_TOO_LONG');
    expectCode(() => responder.readMessage(m1), 'ERR_NOISE_UNUSABLE');
  });

  it('refuses out-of-turn calls without consuming state', () => {
    const { initiator, responder } = ikParties(backend);
    expectCode(() => responder.writeMessage(new Uint8Array(0)), 'ERR_NOISE_WRONG_STATE');
    expectCode(() => initiator.readMessage(new Uint8Array(48)), 'ERR_NOISE_WRONG_STATE');
    expectCode(() => initiator.split(), 'ERR_NOISE_WRONG_STATE');
    const m1 = initiator.writeMessage(new Uint8Array(0));
    expectCode(() => initiator.writeMessage(new Uint8Array(0)), 'ERR_NOISE_WRONG_STATE');
    responder.readMessage(m1);
    initiator.readMessage(responder.writeMessage(new Uint8Array(0)));
    expect(initiator.isFinished).toBe(true);
  });

  it('rejects an all-zero (low-order) remote key with ERR_NOISE_INVALID_DH', () => {
    const client = backend.generateKeyPair();
    const i = new HandshakeState({ protocolName: IK, initiator: true, s: client, rs: new Uint8Array(32), psks: [new Uint8Array(32)], backend });
    expectCode(() => i.writeMessage(new Uint8Array(0)), 'ERR_NOISE_INVALID_DH');
    expectCode(() => i.writeMessage(new Uint8Array(0)), 'ERR_NOISE_UNUSABLE');
    // A responder receiving an all-zero ephemeral fails the same way at its first DH (es).
    const server = backend.generateKeyPair();
    const r = new HandshakeState({ protocolName: IK, initiator: false, s: server, psks: [new Uint8Array(32)], backend });
    expectCode(() => r.readMessage(new Uint8Array(96)), 'ERR_NOISE_INVALID_DH');
    expectCode(() => r.readMessage(new Uint8Array(96)), 'ERR_NOISE_UNUSABLE');
  });

  it('validates psks and missing keys', () => {
    const server = backend.generateKeyPair();
    const client = backend.generateKeyPair();
    expectCode(
      () => new HandshakeState({ protocolName: IK, initiator: true, s: client, rs: server.publicKey, psks: [new Uint8Array(31)], backend }),
      'ERR_NOISE_BAD_PSK',
    );
    expectCode(
      () => new HandshakeState({ protocolName: IK, initiator: true, s: client, rs: server.publicKey, psks: [new Uint8Array(32), new Uint8Array(32)], backend }),
      'ERR_NOISE_BAD_PSK',
    );
    expectCode(() => new HandshakeState({ protocolName: IK, initiator: true, s: client, backend }), 'ERR_NOISE_MISSING_KEY');
    expectCode(() => new HandshakeState({ protocolName: IK, initiator: false, backend }), 'ERR_NOISE_MISSING_KEY');
    expectCode(() => new HandshakeState({ protocolName: IK, initiator: true, rs: server.publicKey, backend }), 'ERR_NOISE_MISSING_KEY');
    expectCode(() => new HandshakeState({ protocolName: IK, initiator: true, s: client, rs: new Uint8Array(31), backend }), 'ERR_INVALID_KEY', InputError);
    // psk not yet supplied: writing the message that needs it is refused, and the state survives.
    const { initiator, responder, psk } = ikParties(backend, true);
    responder.readMessage(initiator.writeMessage(new Uint8Array(0)));
    expectCode(() => responder.writeMessage(new Uint8Array(0)), 'ERR_NOISE_MISSING_KEY');
    expectCode(() => responder.setPsks([new Uint8Array(16)]), 'ERR_NOISE_BAD_PSK');
    responder.setPsks([psk]);
    initiator.readMessage(responder.writeMessage(new Uint8Array(0)));
    expectCode(() => responder.setPsks([psk]), 'ERR_NOISE_WRONG_STATE');
  });

  it('refuses setPsks after the psk token ran (psk0)', () => {
    const psk = new Uint8Array(32).fill(9);
    const i = new HandshakeState({ protocolName: 'Noise_NNpsk0_25519_ChaChaPoly_SHA256', initiator: true, psks: [psk], backend });
    i.writeMessage(new Uint8Array(0));
    expectCode(() => i.setPsks([psk]), 'ERR_NOISE_WRONG_STATE');
  });

  it('rejects unsupported protocol names', () => {
    for (const protocolName of [
      'Noise_IK_448_ChaChaPoly_BLAKE2s',
      'Noise_IK_25519_AESGCM_MD5',
      'Noise_IK_25519_Rijndael_SHA256',
      'Noise_QQ_25519_ChaChaPoly_BLAKE2s',
      'Noise_IKpsk3_25519_ChaChaPoly_BLAKE2s',
      'Noise_XXfallback_25519_ChaChaPoly_BLAKE2s',
      'Noise_IKpsk2+psk2_25519_ChaChaPoly_BLAKE2s',
      'Noise_IK_25519_ChaChaPoly',
      'NoisePSK_IK_25519_ChaChaPoly_BLAKE2s',
    ]) {
      expectCode(() => new HandshakeState({ protocolName, initiator: true, backend }), 'ERR_NOISE_UNSUPPORTED');
    }
  });

  it('runs combined psk modifiers (psk0+psk2) in either spelling', () => {
    for (const protocolName of ['Noise_NNpsk0+psk2_25519_ChaChaPoly_BLAKE2s', 'Noise_NNpsk2+psk0_25519_ChaChaPoly_BLAKE2s']) {
      const psks = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];
      const i = new HandshakeState({ protocolName, initiator: true, psks, backend });
      const r = new HandshakeState({ protocolName, initiator: false, psks, backend });
      r.readMessage(i.writeMessage(enc.encode('one')));
      expect(Buffer.from(i.readMessage(r.writeMessage(enc.encode('two')))).toString()).toBe('two');
      expect(Buffer.from(i.handshakeHash)).toEqual(Buffer.from(r.handshakeHash));
      // Swapped psks must not agree.
      const bad = new HandshakeState({ protocolName, initiator: false, psks: [psks[1]!, psks[0]!], backend });
      expectCode(
        () => bad.readMessage(new HandshakeState({ protocolName, initiator: true, psks, backend }).writeMessage(enc.encode('x'))),
        'ERR_NOISE_DECRYPT',
      );
    }
  });
});
