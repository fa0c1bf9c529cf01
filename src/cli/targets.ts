/**
 * Command-line targets and listen addresses, checked before anything else happens: a mistake on
 * the command line is a usage error (exit 2), found locally, never a handshake and a refusal
 * from the server (issue 12 item 8).
 */
import { parseDeviceTarget } from '../device/target.js';
import { parseLocalListen } from '../config/local-listen.js';
import type { LocalListen } from '../forward/local-listener.js';
import { parseTarget } from '../policy/address.js';
import type { ClientForward } from '../client/client-daemon.js';
import { EXIT } from './exit-codes.js';
import { CliError } from './fail.js';

const TARGET_FORMS = 'HOST:PORT (IPv6 as [ADDR]:PORT), DEVICE:SERVICE or SERVICE.DEVICE.twoway:PORT';

/** Checks a target as a user writes it; returns it unchanged, or throws a usage error. */
export function checkTarget(text: string, what: string): string {
  const quoted = JSON.stringify(text.slice(0, 80));
  try {
    // `DEVICE:SERVICE` and `SERVICE.DEVICE.twoway:PORT`; undefined for a plain host:port.
    if (parseDeviceTarget(text) !== undefined) return text;
    parseTarget(text);
    return text;
  } catch (err) {
    const prefix = `target ${JSON.stringify(text.slice(0, 300))}: `;
    const message = (err as Error).message;
    const why = message.startsWith(prefix) ? message.slice(prefix.length) : message;
    throw new CliError(`${what} ${quoted}: expected ${TARGET_FORMS} (${why})`, EXIT.usage, { cause: err });
  }
}

/**
 * A device target needs the device's key pinned in the client config: without it the stream could
 * only fail after a handshake, so this is a usage error too.
 */
export function checkDevicePinned(target: string, pinned: ReadonlySet<string> | ReadonlyMap<string, unknown>, what: string, file: string): void {
  const device = parseDeviceTarget(target);
  if (device !== undefined && !pinned.has(device.device)) {
    throw new CliError(
      `${what} ${JSON.stringify(target.slice(0, 80))}: no public key pinned for device ${device.device}: add a [[device]] table with its public_key to ${file}`,
      EXIT.usage,
    );
  }
}

/** Parses a listen address of `-L`/`-D` (`host:port`, `unix:PATH` or an absolute path); throws a usage error. */
export function checkListen(text: string, what: string): LocalListen {
  try {
    return parseLocalListen(text);
  } catch (err) {
    throw new CliError(`${what}: ${(err as Error).message}`, EXIT.usage, { cause: err });
  }
}

/** Parses `-L 127.0.0.1:2222=db.corp.example:22`; throws a usage error. */
export function parseForwardFlag(spec: string): ClientForward {
  const eq = spec.indexOf('=');
  if (eq <= 0 || eq === spec.length - 1) {
    throw new CliError(
      `-L ${JSON.stringify(spec.slice(0, 80))}: expected LISTEN=TARGET, e.g. 127.0.0.1:2222=db.corp.example:22 or unix:/run/user/1000/db.sock=db.corp.example:22`,
      EXIT.usage,
    );
  }
  const listen = checkListen(spec.slice(0, eq), `-L ${JSON.stringify(spec.slice(0, 80))}: LISTEN`);
  const target = checkTarget(spec.slice(eq + 1), `-L ${JSON.stringify(spec.slice(0, 80))}: TARGET`);
  return { listen, target };
}
