/**
 * The user's side of a device stream: a target naming a device service is opened as
 * `DEVICE:SERVICE` and wrapped in the end-to-end session with the device's pinned key, so the
 * application's bytes are readable only by that device. No pinned key, no stream: never plaintext.
 */
import { PassThrough, type Duplex } from 'node:stream';
import type { KeyPair } from '../crypto/keys.js';
import { formatDeviceTarget, type DeviceTarget } from './target.js';
import { e2eInitiate } from './e2e/e2e-stream.js';
import { E2EError } from '../errors.js';

export interface UserStreamOptions {
  /** Device name -> pinned static public key. */
  readonly pins: ReadonlyMap<string, Uint8Array>;
  readonly staticKeyPair: KeyPair;
  /** Opens the outer stream (through the session to the server). */
  readonly open: (target: string) => Duplex;
}

/** A stream that fails at once with `err` (a forwarder then resets its socket). */
function failedStream(err: Error): Duplex {
  const stream = new PassThrough();
  process.nextTick(() => stream.destroy(err));
  return stream;
}

/** Opens `target` end to end, or a stream that fails with ERR_E2E_NO_DEVICE_KEY. */
export function openUserStream(target: DeviceTarget, o: UserStreamOptions): Duplex {
  const deviceKey = o.pins.get(target.device);
  if (deviceKey === undefined) {
    return failedStream(new E2EError('ERR_E2E_NO_DEVICE_KEY', `no public key pinned for device ${target.device}: add a [[device]] table to the client config`));
  }
  return e2eInitiate(o.open(formatDeviceTarget(target)), { staticKeyPair: o.staticKeyPair, deviceKey, service: target.service });
}
