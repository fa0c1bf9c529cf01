/**
 * Protocol names (Noise rev 34, section 8): Noise_<pattern><modifiers>_<dh>_<cipher>_<hash>,
 * e.g. Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s or Noise_NNpsk0+psk2_25519_AESGCM_SHA256.
 * Only psk modifiers and DH 25519 are supported; anything else is 'ERR_NOISE_UNSUPPORTED'.
 */

import type { CipherName, HashName } from '../crypto/backend.js';
import { NoiseError } from '../errors.js';
import { PATTERNS, withPsks, type HandshakePattern } from './patterns.js';

export interface ProtocolSuite {
  readonly name: string;
  readonly pattern: HandshakePattern;
  /** psk positions in ascending order; psks are consumed in this order. */
  readonly pskPositions: readonly number[];
  readonly dh: '25519';
  readonly cipher: CipherName;
  readonly hash: HashName;
}

const CIPHERS: readonly CipherName[] = ['ChaChaPoly', 'AESGCM'];
const HASHES: readonly HashName[] = ['BLAKE2s', 'BLAKE2b', 'SHA256', 'SHA512'];
const PSK_MODIFIER = /^psk(\d{1,2})$/;
/** Parsed names are immutable and few; a bound keeps a stream of bogus names from growing it. */
const SUITE_CACHE_ENTRIES = 64;
const suites = new Map<string, ProtocolSuite>();

function unsupported(name: string, why: string): NoiseError {
  // Protocol names are public; echoing one helps the operator.
  return new NoiseError('ERR_NOISE_UNSUPPORTED', `unsupported Noise protocol ${JSON.stringify(name)}: ${why}`);
}

/** Parses and validates a Noise protocol name (results are cached). */
export function parseProtocolName(name: string): ProtocolSuite {
  if (typeof name !== 'string') throw new TypeError('protocolName: expected a string');
  const cached = suites.get(name);
  if (cached !== undefined) return cached;
  const suite = parse(name);
  if (suites.size < SUITE_CACHE_ENTRIES) suites.set(name, suite);
  return suite;
}

function parse(name: string): ProtocolSuite {
  const fields = name.split('_');
  if (fields.length !== 5 || fields[0] !== 'Noise') throw unsupported(name, 'expected Noise_<pattern>_<dh>_<cipher>_<hash>');
  const [, handshake, dh, cipher, hash] = fields as [string, string, string, string, string];

  const firstModifier = handshake.search(/[a-z]/);
  const patternName = firstModifier === -1 ? handshake : handshake.slice(0, firstModifier);
  const base = PATTERNS.get(patternName);
  if (base === undefined) throw unsupported(name, `unknown pattern ${patternName}`);

  const positions: number[] = [];
  if (firstModifier !== -1) {
    for (const modifier of handshake.slice(firstModifier).split('+')) {
      const match = PSK_MODIFIER.exec(modifier);
      if (match === null) throw unsupported(name, `unknown modifier ${modifier}`);
      const position = Number(match[1]);
      if (position > base.messages.length) throw unsupported(name, `${modifier} is beyond the pattern's ${base.messages.length} messages`);
      if (positions.includes(position)) throw unsupported(name, `${modifier} repeated`);
      positions.push(position);
    }
  }
  if (dh !== '25519') throw unsupported(name, `DH ${dh}`);
  if (!(CIPHERS as readonly string[]).includes(cipher)) throw unsupported(name, `cipher ${cipher}`);
  if (!(HASHES as readonly string[]).includes(hash)) throw unsupported(name, `hash ${hash}`);

  positions.sort((a, b) => a - b);
  return Object.freeze({
    name,
    pattern: positions.length === 0 ? base : withPsks(base, positions),
    pskPositions: Object.freeze(positions),
    dh: '25519',
    cipher: cipher as CipherName,
    hash: hash as HashName,
  });
}
