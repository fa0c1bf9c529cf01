/**
 * Backend selection: node:crypto with the native AEAD when it is built and passes its check
 * ('native'), else node:crypto alone ('node'); @noble on request.
 */

import type { BackendName, CryptoBackend } from './backend.js';
import { loadNativeAead, type NativeAeadStatus } from './native-aead.js';
import { nobleBackend } from './noble-backend.js';
import { createNodeBackend, nodeBackend } from './node-backend.js';

/** Whether the native AEAD loaded in this process, and why not. */
export const nativeAeadStatus: NativeAeadStatus = loadNativeAead();

const nativeBackend: CryptoBackend | undefined = nativeAeadStatus.available ? createNodeBackend({ nativeAead: nativeAeadStatus.binding }) : undefined;

/** The default backend: 'native' when the addon loaded, else 'node' (node:crypto / OpenSSL). */
export const defaultBackend: CryptoBackend = nativeBackend ?? nodeBackend;

/** The backend called `name`; 'native' throws a TypeError when the addon is not available. */
export function getBackend(name: BackendName): CryptoBackend {
  switch (name) {
    case 'node':
      return nodeBackend;
    case 'native':
      if (nativeBackend === undefined) {
        throw new TypeError(`the native crypto backend is not available (${nativeAeadStatus.available ? '' : nativeAeadStatus.reason})`);
      }
      return nativeBackend;
    case 'noble':
      return nobleBackend;
    default: {
      const unknown: never = name;
      throw new TypeError(`unknown crypto backend: ${String(unknown)}`);
    }
  }
}

/** The backends this process can run ('native' only when the addon loaded). */
export function availableBackends(): BackendName[] {
  return nativeBackend === undefined ? ['node', 'noble'] : ['node', 'native', 'noble'];
}
