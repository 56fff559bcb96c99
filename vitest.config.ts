import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Native work runs on its own threads; forks keep a crashed addon from taking vitest down.
    pool: 'forks',
    // The default report, then the skipped count with its reasons (test/helpers/skip-reporter.ts).
    reporters: ['default', './test/helpers/skip-reporter.ts'],
  },
});
