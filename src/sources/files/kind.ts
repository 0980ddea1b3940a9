/**
 * The `files` kind of source: directory trees with their metadata, restorable to
 * each snapshot (no log). Everything generic code needs to know about it is here
 * (the Source seam, src/sources/source.ts); the backup and restore themselves are the
 * generic engine's archiver and restorer.
 */
import { filesFields, filesOptions } from './options.js';
import * as path from 'node:path';
import * as z from 'zod';
import { LifeboatError } from '../../errors.js';
import { restoreInvocation } from '../../engine/restore-options.js';
import type { SourceKind } from '../source.js';
import { filesDrillName } from './names.js';

/** A files snapshot records no consistency point: its time is all there is. */
export type FilesPoint = Record<string, unknown>;

export const files: SourceKind<FilesPoint> = {
  name: 'files',
  get options() {
    return filesOptions();
  },
  // The reader parsed the keys with filesOptions: they are its output.
  fields: (o) => filesFields(o as z.output<ReturnType<typeof filesOptions>>),
  point: z.object({}).loose(),

  reach: async (s, probe) => s.paths.map((p) => probe.file(p, 'any')).filter((m): m is string => m !== undefined),

  jobs: {
    backup: (s) => ({ command: ['backup'], options: [['--name', s.name], ['--tag', s.tags], ['--exclude', s.exclude]], operands: s.paths }),
    drill: (s) => ({ command: ['drill'], options: [['--source', s.name]] }),
  },
  childEnv: () => ({}),

  restore: {
    command: ['restore'],
    // Files name their source so "latest" is that source's newest snapshot in a shared repository.
    options: [
      { flag: '', from: 'snapshot' },
      { flag: '--source', from: 'name' },
      { flag: '--target', from: 'target' },
      { flag: '--time', from: 'time' },
    ],
    startByDefault: false,
    measuresRto: false,
    targetExample: 'e.g. /var/tmp/restore-1',
    fieldsHint: 'give "snapshot" (an id from /backups) or "time"',
    check(_s, p) {
      if (p.snapshot !== undefined && p.time !== undefined) {
        throw new LifeboatError('USAGE', 'give "snapshot" or "time" for a files restore, not both', { hint: 'the newest backup at or before "time" is used' });
      }
    },
  },

  recover: {
    live: (snap) => snap.paths.filter((p) => p.startsWith('/')),
    restoredPath: (output, live) => path.join(output, live),
    switchOver: (target, live, _r, sh) =>
      live.length === 0
        ? ['# the restored files are under the target; copy back what you need:', `ls ${sh(target)}`]
        : [
            '# the restored files are under the target at their original paths; copy them back, e.g.:',
            ...live.map((p) => `rsync -a ${sh(path.join(target, p))}/ ${sh(p)}/`),
          ],
  },

  drill: {
    nameOf: filesDrillName,
    run: async (repo, name, ctx) => (await import('./drill.js')).drillFiles(repo, name, ctx),
  },

  runbook: {
    what: (s) => s.paths.map((p) => `\`${p}\``).join(', '),
    steps(s, { g, cmd }) {
      return [
        '1. Pick the snapshot (newest first):',
        '',
        '   ```sh',
        `   ${g} snapshots --json | jq -r '.[] | select(.source.name == "${s.name}") | "\\(.time) \\(.short_id)"'`,
        '   ```',
        '2. Restore into a new directory (a restore never overwrites; `--delta` refreshes an older copy in place);',
        '   `latest` is the newest snapshot of this source, or give the SNAPSHOT_ID from step 1:',
        '',
        '   ```sh',
        `   ${g} ${cmd(restoreInvocation(s, { target: `/var/tmp/restore-${s.name}` }))}`,
        '   ```',
        `3. Move the files into place: ${s.paths.map((p) => `\`${p}\``).join(', ')}.`,
      ];
    },
  },
};
