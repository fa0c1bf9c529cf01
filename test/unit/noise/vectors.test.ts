/**
 * Known-answer tests: every cacophony vector (472) with each backend (node, native where the addon
 * is built, noble), plus any extra vector files named by NOISE_VECTORS (paths separated by ':'),
 * which must load and run completely. The vectors come from ../shared/noise-vectors when the
 * repository sits next to it, else from the repository's copy in test/fixtures/noise-vectors
 * (which must then equal the shared file).
 */

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { availableBackends, getBackend } from '../../../src/crypto/get-backend.js';
import { FIXTURE_VECTORS_DIR, SHARED_VECTORS_DIR, loadVectors, runVector, type NoiseVector } from '../../helpers/vector-runner.js';

const SHARED_CACOPHONY = path.join(SHARED_VECTORS_DIR, 'cacophony.json');
const FIXTURE_CACOPHONY = path.join(FIXTURE_VECTORS_DIR, 'cacophony.json');
/** The shared file when the repository sits next to ../shared, else the repository's copy. */
const CACOPHONY = existsSync(SHARED_CACOPHONY) ? SHARED_CACOPHONY : FIXTURE_CACOPHONY;
/** node, noble and, where the addon is built, native (test/unit/crypto/native-aead.test.ts fails if it is not). */
const BACKENDS = availableBackends();

// With both present, the copy must be the shared file: a stale copy fails this file loudly.
if (CACOPHONY === SHARED_CACOPHONY && !readFileSync(FIXTURE_CACOPHONY).equals(readFileSync(SHARED_CACOPHONY))) {
  throw new Error(`${FIXTURE_CACOPHONY} differs from ${SHARED_CACOPHONY}: copy the shared file again`);
}
const cacophony = loadVectors(CACOPHONY);

describe('cacophony vectors', () => {
  it('holds the 472 vectors the README lists', () => {
    expect(cacophony).toHaveLength(472);
    expect(cacophony.some((v) => v.protocol_name === 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s')).toBe(true);
  });

  for (const backend of BACKENDS) {
    describe(`${backend} backend`, () => {
      it.each(cacophony.map((v, i) => [`${i} ${v.protocol_name}`, v] as [string, NoiseVector]))('%s', (_name, vector) => {
        expect(runVector(vector, getBackend(backend))).toBeGreaterThanOrEqual(4);
      });
    });
  }
});

const extraFiles = (process.env['NOISE_VECTORS'] ?? '').split(':').filter((f) => f.trim() !== '');

describe.runIf(extraFiles.length > 0)('extra vectors from NOISE_VECTORS', () => {
  for (const file of extraFiles) {
    let vectors: NoiseVector[] | undefined;
    let loadError: unknown;
    try {
      vectors = loadVectors(path.resolve(file));
    } catch (err) {
      loadError = err;
    }
    it(`${file} loads`, () => {
      if (loadError !== undefined) throw loadError as Error;
      expect(vectors!.length).toBeGreaterThan(0);
    });
    for (const backend of BACKENDS) {
      it(`${file}: every vector passes with the ${backend} backend`, () => {
        if (vectors === undefined) throw new Error(`${file} could not be loaded`);
        const failures: string[] = [];
        vectors.forEach((v, i) => {
          try {
            runVector(v, getBackend(backend));
          } catch (err) {
            failures.push(`#${i} ${v.protocol_name}: ${(err as Error).message}`);
          }
        });
        expect(failures).toEqual([]);
      });
    }
  }
});
