/**
 * `twoway server --debug-relay-capture FILE`: appends every byte the server relays between users
 * and devices (and through reverse listeners) to FILE, created with mode 0600. For audits and
 * tests: it shows exactly what the server can see, which for end-to-end streams is ciphertext.
 */
import fs from 'node:fs';
import { ConfigError } from '../errors.js';

export function openRelayCapture(file: string): { tap(chunk: Buffer): void; close(): void } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
    fs.fchmodSync(fd, 0o600);
  } catch (err) {
    throw new ConfigError('ERR_CONFIG_FILE', `--debug-relay-capture ${file}: cannot be opened (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
      cause: err,
    });
  }
  let open = true;
  return {
    tap(chunk: Buffer): void {
      if (open) fs.writeSync(fd, chunk);
    },
    close(): void {
      if (!open) return;
      open = false;
      fs.closeSync(fd);
    },
  };
}
