import { randomFillSync } from 'node:crypto';
import { decodeKey, encodeKey, generateKeyPair, publicKeyFromPrivate, wipe } from '../crypto/keys.js';
import { readAll } from './io.js';

/** `twoway keygen`: a new private key, base64, as `wg genkey` prints it. */
export function keygen(stdout: NodeJS.WritableStream): void {
  const pair = generateKeyPair();
  stdout.write(`${encodeKey(pair.privateKey)}\n`);
  wipe(pair.privateKey);
}

/** `twoway pubkey`: reads a private key on stdin and prints its public key, as `wg pubkey`. */
export async function pubkey(stdin: NodeJS.ReadableStream, stdout: NodeJS.WritableStream): Promise<void> {
  const text = await readAll(stdin, 4096);
  const privateKey = decodeKey(text.toString('utf8').trim(), 'private key on stdin');
  text.fill(0);
  stdout.write(`${encodeKey(publicKeyFromPrivate(privateKey))}\n`);
  wipe(privateKey);
}

/**
 * `twoway genpsk`: a new pre-shared key, 32 random bytes in base64, as `wg genpsk` prints it; the
 * format psk files hold (`psk_file`).
 */
export function genpsk(stdout: NodeJS.WritableStream): void {
  const psk = randomFillSync(Buffer.alloc(32));
  stdout.write(`${encodeKey(psk)}\n`);
  psk.fill(0);
}
