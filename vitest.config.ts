import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Two cores: two test files at a time; each may start worker threads of its own.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: {
      // Cheaper scrypt for the many repositories tests create (tests that check the
      // real parameters unset it).
      LIFEBOAT_TEST_KDF: 'fast',
    },
  },
});
