import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest, longest first (a full run on the 2-core machine, 2026-12-02;
 * files split since then placed by the share of the old file's tests they took).
 * Vitest orders files by the durations of the last local run, but CI starts from a
 * fresh node_modules with no such record and falls back to "largest file first": a
 * short file of long tests could start last and leave one worker running alone at
 * the end. Starting the longest files first keeps both workers busy to the end.
 * Files not named here keep vitest's own order, after these.
 */
export const LONGEST_FIRST = [
  'test/integration/postgres.test.ts',
  'test/integration/damage.test.ts', // damage and damage-check were one file of ~227 s
  'test/integration/damage-check.test.ts',
  'test/conformance/postgres.test.ts', // ten restores, each starting a server
  'test/integration/object-storage.test.ts',
  'test/integration/migrate.test.ts', // one test of ~100 s: it cannot be split across workers
  'test/e2e/errors.test.ts',
  'test/integration/pg-restored-copy.test.ts',
  'test/integration/prune.test.ts',
  'test/e2e/safety.test.ts', // safety and safety-restore were one file of ~160 s
  'test/e2e/safety-restore.test.ts',
  'test/integration/pg-stream.test.ts',
  'test/integration/sqlite-continuity.test.ts',
  'test/integration/pg-verify.test.ts',
  'test/integration/prune-safety.test.ts',
  'test/integration/daemon-schedule.test.ts',
  'test/integration/keys-v2.test.ts',
  'test/integration/write-only.test.ts',
  'test/e2e/sqlite-errors.test.ts',
  'test/integration/key-slots.test.ts',
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
