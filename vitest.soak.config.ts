import { defineConfig } from 'vitest/config';

/** Soak suites (`npm run soak`): long, bounded runs kept out of `npm test`. */
export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    testTimeout: 600_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
