/**
 * Handshake patterns of the Noise Protocol Framework (rev 34): one-way (section 7.4),
 * fundamental interactive (7.5) and deferred (7.6), with their pre-messages. Messages alternate
 * starting with the initiator, so only their tokens are listed. psk modifiers (section 9.2) are
 * applied by `withPsks`.
 */

import { DH_BYTES, TAG_BYTES } from '../crypto/backend.js';

export type MessageToken = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss' | 'psk';
export type PreMessageToken = 'e' | 's';

export interface HandshakePattern {
  readonly name: string;
  /** Keys the responder knows in advance from the initiator ("-> s" before "..."). */
  readonly initiatorPreMessage: readonly PreMessageToken[];
  /** Keys the initiator knows in advance from the responder ("<- s" before "..."). */
  readonly responderPreMessage: readonly PreMessageToken[];
  /** Message i is sent by the initiator when i is even. */
  readonly messages: readonly (readonly MessageToken[])[];
  /** One-way patterns (N, K, X): a single message, transport only from initiator to responder. */
  readonly oneWay: boolean;
}

function tokens<T extends string>(text: string): T[] {
  return text === '' ? [] : (text.split(',').map((t) => t.trim()) as T[]);
}

/** `pre` is "" or "-> s", "<- s", "-> s; <- s"; each message lists its tokens as in the spec. */
function pattern(name: string, pre: string, ...messages: string[]): HandshakePattern {
  let initiatorPreMessage: PreMessageToken[] = [];
  let responderPreMessage: PreMessageToken[] = [];
  for (const line of pre
    .split(';')
    .map((l) => l.trim())
    .filter((l) => l !== '')) {
    if (line.startsWith('->')) initiatorPreMessage = tokens<PreMessageToken>(line.slice(2));
    else responderPreMessage = tokens<PreMessageToken>(line.slice(2));
  }
  return Object.freeze({
    name,
    initiatorPreMessage: Object.freeze(initiatorPreMessage),
    responderPreMessage: Object.freeze(responderPreMessage),
    messages: Object.freeze(messages.map((m) => Object.freeze(tokens<MessageToken>(m)))),
    oneWay: name.length === 1,
  });
}

const ALL: readonly HandshakePattern[] = [
  // 7.4 one-way
  pattern('N', '<- s', 'e, es'),
  pattern('K', '-> s; <- s', 'e, es, ss'),
  pattern('X', '<- s', 'e, es, s, ss'),
  // 7.5 fundamental interactive
  pattern('NN', '', 'e', 'e, ee'),
  pattern('NK', '<- s', 'e, es', 'e, ee'),
  pattern('NX', '', 'e', 'e, ee, s, es'),
  pattern('XN', '', 'e', 'e, ee', 's, se'),
  pattern('XK', '<- s', 'e, es', 'e, ee', 's, se'),
  pattern('XX', '', 'e', 'e, ee, s, es', 's, se'),
  pattern('KN', '-> s', 'e', 'e, ee, se'),
  pattern('KK', '-> s; <- s', 'e, es, ss', 'e, ee, se'),
  pattern('KX', '-> s', 'e', 'e, ee, se, s, es'),
  pattern('IN', '', 'e, s', 'e, ee, se'),
  pattern('IK', '<- s', 'e, es, s, ss', 'e, ee, se'),
  pattern('IX', '', 'e, s', 'e, ee, se, s, es'),
  // 7.6 deferred
  pattern('NK1', '<- s', 'e', 'e, ee, es'),
  pattern('NX1', '', 'e', 'e, ee, s', 'es'),
  pattern('X1N', '', 'e', 'e, ee', 's', 'se'),
  pattern('X1K', '<- s', 'e, es', 'e, ee', 's', 'se'),
  pattern('XK1', '<- s', 'e', 'e, ee, es', 's, se'),
  pattern('X1K1', '<- s', 'e', 'e, ee, es', 's', 'se'),
  pattern('X1X', '', 'e', 'e, ee, s, es', 's', 'se'),
  pattern('XX1', '', 'e', 'e, ee, s', 'es, s, se'),
  pattern('X1X1', '', 'e', 'e, ee, s', 'es, s', 'se'),
  pattern('K1N', '-> s', 'e', 'e, ee', 'se'),
  pattern('K1K', '-> s; <- s', 'e, es', 'e, ee', 'se'),
  pattern('KK1', '-> s; <- s', 'e', 'e, ee, se, es'),
  pattern('K1K1', '-> s; <- s', 'e', 'e, ee, es', 'se'),
  pattern('K1X', '-> s', 'e', 'e, ee, s, es', 'se'),
  pattern('KX1', '-> s', 'e', 'e, ee, se, s', 'es'),
  pattern('K1X1', '-> s', 'e', 'e, ee, s', 'se, es'),
  pattern('I1N', '', 'e, s', 'e, ee', 'se'),
  pattern('I1K', '<- s', 'e, es, s', 'e, ee', 'se'),
  pattern('IK1', '<- s', 'e, s', 'e, ee, se, es'),
  pattern('I1K1', '<- s', 'e, s', 'e, ee, es', 'se'),
  pattern('I1X', '', 'e, s', 'e, ee, s, es', 'se'),
  pattern('IX1', '', 'e, s', 'e, ee, se, s', 'es'),
  pattern('I1X1', '', 'e, s', 'e, ee, s', 'se, es'),
];

/** Every supported pattern by name. */
export const PATTERNS: ReadonlyMap<string, HandshakePattern> = new Map(ALL.map((p) => [p.name, p]));

/**
 * Applies psk modifiers (section 9.2): psk0 puts a "psk" token at the start of the first message,
 * pskN (N >= 1) at the end of message N. `positions` must be valid for the pattern.
 */
export function withPsks(base: HandshakePattern, positions: readonly number[]): HandshakePattern {
  const messages = base.messages.map((m) => [...m]);
  for (const position of [...positions].sort((a, b) => a - b)) {
    if (position === 0) messages[0]!.unshift('psk');
    else messages[position - 1]!.push('psk');
  }
  return Object.freeze({
    ...base,
    name: base.name + positions.map((p) => `psk${p}`).join('+'),
    messages: Object.freeze(messages.map((m) => Object.freeze(m))),
  });
}

/**
 * Exact length of a handshake message with these tokens and payload: "e" is DHLEN bytes, "s" is
 * DHLEN plus a tag once a key exists, the payload carries a tag once a key exists. `hasKey` is
 * the cipher state before the message; DH and psk tokens (and "e" in psk handshakes) key it.
 */
export function messageLength(tokens: readonly MessageToken[], payloadLength: number, hasKey: boolean, pskMode: boolean): number {
  let keyed = hasKey;
  let length = 0;
  for (const token of tokens) {
    if (token === 'e') {
      length += DH_BYTES;
      if (pskMode) keyed = true;
    } else if (token === 's') {
      length += DH_BYTES + (keyed ? TAG_BYTES : 0);
    } else {
      keyed = true;
    }
  }
  return length + payloadLength + (keyed ? TAG_BYTES : 0);
}
