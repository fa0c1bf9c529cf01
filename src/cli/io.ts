import { CliError } from './fail.js';
import { EXIT } from './exit-codes.js';

/** Reads a whole stream into one buffer, refusing more than `maxBytes`. */
export async function readAll(stream: NodeJS.ReadableStream, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buf.length;
    if (total > maxBytes) throw new CliError(`input is longer than ${maxBytes} bytes`, EXIT.usage);
    chunks.push(buf);
  }
  const out = Buffer.alloc(total);
  let offset = 0;
  for (const c of chunks) {
    c.copy(out, offset);
    offset += c.length;
    c.fill(0);
  }
  return out;
}
