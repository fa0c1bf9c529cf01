/**
 * Known-answer tests: every cacophony vector (472) with each backend, plus any extra vector files
 * named by NOISE_VECTORS (paths separated by ':'), which must load and run completely.
 */

import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getBackend } from '../../../src/crypto/get-backend.js';
import { SHARED_VECTORS_DIR, loadVectors, runVector, type NoiseVector } from './vector-runner.js';

const CACOPHONY = path.join(SHARED_VECTORS_DIR, 'cacophony.json');
const BACKENDS = ['node', 'noble'] as const;

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
      if (loadError !== undefined) throw loadError;
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
