import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest, longest first (the times of a full run on the 2-core machine,
 * 3 workers, 2026-12-03; files under 30 s keep vitest's order).
 * Vitest orders files by the durations of the last local run, but CI starts from a
 * fresh node_modules with no such record and falls back to "largest file first": a
 * short file of long tests could start last and leave one worker running alone at
 * the end. Starting the longest files first keeps every worker busy to the end.
 * Files not named here keep vitest's own order, after these.
 */
export const LONGEST_FIRST = [
  'test/integration/daemon-archiving.test.ts', // 115 s
  'test/integration/postgres.test.ts', // 110 s
  'test/e2e/errors.test.ts', // 102 s
  'test/integration/group-three-tier.test.ts', // 90 s
  'test/integration/object-storage.test.ts', // 89 s
  'test/integration/damage-check.test.ts', // 81 s
  'test/integration/prune-safety.test.ts', // 79 s
  'test/integration/pg-restored-copy.test.ts', // 75 s
  'test/integration/prune.test.ts', // 70 s
  'test/conformance/postgres.test.ts', // 69 s
  'test/integration/damage.test.ts', // 69 s
  'test/integration/oplog.test.ts', // 67 s
  'test/e2e/recover.test.ts', // 105 s in a loaded full run, about 65 s on a quiet one
  'test/e2e/safety-restore.test.ts', // 66 s
  'test/integration/keys-v2.test.ts', // 63 s
  'test/integration/sqlite-replicate.test.ts', // 63 s
  'test/e2e/redis-pitr.test.ts', // 63 s
  'test/integration/pg-verify.test.ts', // 61 s
  'test/integration/pg-stream.test.ts', // 60 s
  'test/integration/sqlite-continuity.test.ts', // 58 s
  'test/integration/daemon-groups.test.ts', // 58 s
  'test/integration/group-data.test.ts', // 55 s
  'test/integration/group-restore.test.ts', // 55 s
  'test/e2e/safety.test.ts', // 53 s
  'test/integration/bucket-s3.test.ts', // 52 s
  'test/e2e/dashboard-restore.test.ts', // 48 s (here, alone)
  'test/integration/graph-drill.test.ts', // 46 s
  'test/integration/command.test.ts', // 45 s
  'test/integration/redis-replicate.test.ts', // 41 s
  'test/e2e/sqlite-errors.test.ts', // 38 s
  'test/integration/sqlite-replicate-memory.test.ts', // 63 s loaded, 35-55 s alone
  'test/integration/daemon-browse.test.ts', // 52 s loaded
  'test/integration/restore-safety.test.ts', // 37 s
  'test/integration/redis-restore.test.ts', // 33 s
  'test/integration/key-slots.test.ts', // 30 s
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
    // Four test files at a time on two cores: many tests spend much of their time
    // waiting (for a server to start, an RPO window to pass, a replicator to ship), and a
    // third file fills those waits. Measured on this 2-core machine, whole suite:
    // 2 workers 1167 s, 3 workers 957 s (2026-12-02); with consistency groups' tests, 3
    // workers took 1011 s (2026-12-03), so a fourth fills more of the waits. Every test
    // waits for conditions, not for guessed times, so the extra load changes durations,
    // not outcomes.
    maxWorkers: 4,
    // Test files share each worker's module cache instead of importing the program (and
    // the setup file's source registry) afresh for every file: the unit tests took 83
    // CPU-seconds isolated and 54 shared (2026-12-03). No test file leaves global state
    // behind (those that set environment variables put them back), and files in one worker
    // run one after another.
    isolate: false,
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
