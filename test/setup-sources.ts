/**
 * Every test process registers the kinds of source, as the program's entry points do
 * (src/sources/all.ts): tests read lifeboat.yaml and build jobs without going through
 * cli/main.ts.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect } from 'vitest';
import '../src/sources/all.js';

/**
 * With LIFEBOAT_SUITE_CPU=<file>, each test file's CPU-seconds are appended to that file:
 * the vitest worker's own and those of the child processes it waited for (the CLI, the
 * scratch servers it stopped), from /proc/self/stat. Files in one worker run one after
 * another, so the difference is the file's. A server that daemonized away (re-parented)
 * is not counted. docs/performance.md, "Where the test suite's time goes".
 */
const cpuLog = process.env.LIFEBOAT_SUITE_CPU;
if (cpuLog) {
  const ticks = (): number => {
    // Fields after the command's closing parenthesis: utime is the 14th field of the line.
    const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  };
  let start = 0;
  let wall = 0;
  beforeAll(() => {
    start = ticks();
    wall = Date.now();
  });
  afterAll(() => {
    const file = (expect.getState().testPath ?? '?').replace(`${process.cwd()}/`, '');
    appendFileSync(cpuLog, `${((ticks() - start) / 100).toFixed(2)}\t${((Date.now() - wall) / 1000).toFixed(1)}\t${file}\n`);
  });
}
