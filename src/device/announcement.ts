/**
 * The `@services` exchange, both halves (docs/PROTOCOL.md, "Device endpoints"): a device agent
 * opens a stream with the reserved target ANNOUNCE_TARGET and writes the names of its services
 * (encoded by target.ts); the server reads at most MAX_ANNOUNCEMENT_BYTES of it and hands the
 * decoded list to the router. A bad announcement is logged and ignored; neither side ever throws.
 */
import type { Logger } from 'pino';
import { ANNOUNCE_TARGET, MAX_ANNOUNCEMENT_BYTES, decodeAnnouncement, encodeAnnouncement } from './target.js';
import { EVENTS } from '../log/events.js';
import type { MuxSession } from '../mux/session.js';
import type { MuxStream } from '../mux/stream.js';

/** The agent's half: opens the `@services` stream in `mux` and writes `services`. */
export function writeAnnouncement(mux: MuxSession, services: readonly string[], log: Logger): void {
  if (mux.closed) return;
  try {
    const stream = mux.openStream(ANNOUNCE_TARGET);
    stream.on('error', (err: Error) => log.warn({ event: EVENTS.deviceServices, err: err.message }, `announcing services failed: ${err.message}`));
    stream.on('data', () => {});
    stream.end(encodeAnnouncement(services));
    log.info({ event: EVENTS.deviceServices, services: [...services] }, `announced services: ${services.join(', ') || '(none)'}`);
  } catch (err) {
    log.warn({ event: EVENTS.deviceServices, err: (err as Error).message }, `announcing services failed: ${(err as Error).message}`);
  }
}

/**
 * The server's half: reads device `device`'s accepted `@services` stream to its end and calls
 * `onServices` with the names; one over MAX_ANNOUNCEMENT_BYTES is reset with 'limit'.
 */
export function readAnnouncement(stream: MuxStream, device: string, log: Logger, onServices: (services: string[]) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  stream.on('error', () => {});
  stream.on('data', (c: Buffer) => {
    size += c.length;
    if (size > MAX_ANNOUNCEMENT_BYTES) {
      log.warn({ event: EVENTS.deviceServices, device }, `device ${device}: announcement over ${MAX_ANNOUNCEMENT_BYTES} bytes ignored`);
      stream.reset('limit');
      return;
    }
    chunks.push(c);
  });
  stream.on('end', () => {
    stream.end();
    let services: string[];
    try {
      services = decodeAnnouncement(Buffer.concat(chunks));
    } catch (err) {
      log.warn({ event: EVENTS.deviceServices, device, err: (err as Error).message }, `device ${device}: ${(err as Error).message}`);
      return;
    }
    log.info({ event: EVENTS.deviceServices, device, services }, `device ${device} offers ${services.join(', ') || 'no services'}`);
    onServices(services);
  });
}
