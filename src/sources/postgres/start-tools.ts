/**
 * The server binaries starting a restored cluster needs, checked before a restore
 * writes anything. Apart from start.ts so that planning a restore (the daemon's
 * checks, the postgres kind's restore.check) does not load the PostgreSQL client.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';

/** The binaries `--start` needs; checked before a restore writes anything. */
export const START_TOOLS = ['pg_ctl', 'postgres'] as const;

/** Refuses a bin_dir that lacks what starting a restored cluster needs. */
export function checkStartTools(binDir: string): void {
  for (const tool of START_TOOLS) {
    if (!existsSync(path.join(binDir, tool))) {
      throw new LifeboatError('NOT_FOUND', `no ${tool} in ${binDir}`, {
        hint: 'point bin_dir (--bin-dir) at the PostgreSQL server binaries of the backup\'s major version, e.g. /usr/lib/postgresql/15/bin',
      });
    }
  }
}
