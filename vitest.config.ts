import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest, longest first (the times of a full run on the quiet 2-core
 * machine, 2026-12-02, 480 s in all; files under 25 s keep vitest's order).
 * Vitest orders files by the durations of the last local run, but CI starts from a
 * fresh node_modules with no such record and falls back to "largest file first": a
 * short file of long tests could start last and leave one worker running alone at
 * the end. Starting the longest files first keeps every worker busy to the end.
 * Files not named here keep vitest's own order, after these.
 */
export const LONGEST_FIRST = [
  'test/integration/daemon-archiving.test.ts', // 115 s
  'test/integration/damage-check.test.ts', // 84 s
  'test/integration/damage.test.ts', // 68 s
  'test/integration/sqlite-continuity.test.ts', // 60 s
  'test/integration/sqlite-replicate.test.ts', // 52 s
  'test/integration/pg-stream.test.ts', // 51 s
  'test/e2e/errors.test.ts', // 48 s
  'test/integration/postgres.test.ts', // 46 s
  'test/integration/object-storage.test.ts', // 46 s
  'test/integration/keys-v2.test.ts', // 44 s
  'test/integration/pg-restored-copy.test.ts', // 43 s
  'test/integration/prune.test.ts', // 43 s
  'test/conformance/postgres.test.ts', // 42 s
  'test/integration/pg-verify.test.ts', // 32 s
  'test/e2e/safety-restore.test.ts', // 29 s
  'test/e2e/safety.test.ts', // 28 s
  'test/integration/prune-safety.test.ts', // 25 s
  'test/integration/daemon-sqlite-archiving.test.ts', // 25 s
];

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification): number => {
      const i = LONGEST_FIRST.indexOf(relative(f.project.config.root, f.moduleId).split('\\').join('/'));
      return i < 0 ? LONGEST_FIRST.length : i;
    };
    // Array.prototype.sort is stable: the rest keep the order vitest gave them.
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Three test files at a time on two cores: many tests spend much of their time
    // waiting (for a server to start, an RPO window to pass, a replicator to ship), and a
    // third file fills those waits. Measured on this 2-core machine, whole suite:
    // 2 workers 1167 s, 3 workers 957 s (2026-12-02). Every test waits for conditions,
    // not for guessed times, so the extra load changes durations, not outcomes.
    maxWorkers: 3,
    // The kinds of source register themselves, as in the program's entry points.
    setupFiles: ['test/setup-sources.ts'],
    sequence: { sequencer: LongestFirst },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: {
      // Cheaper scrypt for the many repositories tests create (tests that check the
      // real parameters unset it).
      LIFEBOAT_TEST_KDF: 'fast',
    },
  },
});
