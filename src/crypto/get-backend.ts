/** Backend selection: node:crypto by default, @noble on request. */

import type { BackendName, CryptoBackend } from './backend.js';
import { nobleBackend } from './noble-backend.js';
import { nodeBackend } from './node-backend.js';

/** The default backend (node:crypto / OpenSSL). */
export const defaultBackend: CryptoBackend = nodeBackend;

/** The backend called `name`. */
export function getBackend(name: BackendName): CryptoBackend {
  switch (name) {
    case 'node':
      return nodeBackend;
    case 'noble':
      return nobleBackend;
    default: {
      const unknown: never = name;
      throw new TypeError(`unknown crypto backend: ${String(unknown)}`);
    }
  }
}
