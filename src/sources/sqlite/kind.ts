/**
 * The `sqlite` kind of source: a SQLite database file, backed up online (backup API
 * image) and, with `replicate: true`, its WAL frames shipped continuously in
 * generations, so it restores to any second. Everything generic code needs to know
 * about it is here (the Source seam, src/sources/source.ts); the work is in this folder.
 */
import type { z } from 'zod';
import { sqliteFields, sqliteOptions } from './options.js';
import { TXN_OPTIONS, restoreInvocation } from '../../engine/restore-options.js';
import type { SourceKind } from '../source.js';
import type { SqliteConsistency } from './backup.js';
import { logSource } from './names.js';
import { sqlitePointSchema } from './point.js';

export const sqlite: SourceKind<SqliteConsistency> = {
  name: 'sqlite',
  get options() {
    return sqliteOptions();
  },
  // The reader parsed the keys with sqliteOptions: they are its output.
  fields: (o) => sqliteFields(o as z.output<ReturnType<typeof sqliteOptions>>),
  get point() {
    return sqlitePointSchema();
  },

  reach: async (s, probe) => {
    const problem = s.path ? probe.file(s.path, 'file') : undefined;
    if (problem) return [problem];
    if (s.path && s.graph) {
      const found = await (await import('./graph.js')).graphProblem(s.path, s.graph);
      if (found) return [found];
    }
    return [];
  },

  jobs: {
    backup: (s) => ({ command: ['sqlite', 'backup'], positionals: [s.path as string], options: [['--name', s.name], ['--tag', s.tags]] }),
    drill: (s) => ({ command: ['drill'], options: [['--source', s.name]] }),
  },
  childEnv: () => ({}),

  restore: {
    command: ['sqlite', 'restore'],
    options: [
      { flag: '', from: 'name' },
      { flag: '--output', from: 'target' },
      { flag: '--time', from: 'time' },
      ...TXN_OPTIONS,
    ],
    startByDefault: false,
    measuresRto: false,
    targetExample: 'e.g. /var/tmp/restored.db',
    fieldsHint: 'give "time" (RFC 3339), "txn" or "before_txn" (numbers: `sqlite history`), or nothing for the newest data',
  },

  recover: {
    live: (snap) => {
      const file = (snap.consistency as { file?: unknown } | undefined)?.file;
      return typeof file === 'string' && file.startsWith('/') ? [file] : [];
    },
    switchOver: (target, live, _r, sh) => {
      const file = live[0];
      if (!file) return ['# stop the application, then move the restored file over the database (remove a stale DB-wal and DB-shm first):', `mv ${sh(target)} DATABASE`];
      return [
        '# stop the application that writes the database, then:',
        `rm -f ${sh(`${file}-wal`)} ${sh(`${file}-shm`)}`,
        `mv ${sh(target)} ${sh(file)}`,
        '# start the application again',
      ];
    },
  },

  drill: {
    nameOf: (s) => s.source.name,
    run: async (repo, name, ctx) => (await import('./drill.js')).drillSqlite(repo, name, ctx),
  },

  log: {
    sources: (name) => [logSource(name)],
    trim: async (repo, name, after, cutoff, opts) => (await import('./log-retention.js')).trimSqlite(repo, name, after, cutoff, opts),
    reportAs: 'sqlite',
  },

  window: async (repo, name) => (await import('./window.js')).sqliteWindow(repo, name),

  continuous: {
    method: 'replicate',
    invocation: (s) => ({
      command: ['sqlite', 'replicate'],
      positionals: [s.path as string],
      options: [['--name', s.name], ['--interval', s.interval || undefined], ['--snapshot-interval', s.snapshotInterval || undefined], ['--verify-interval', s.verifyInterval || undefined]],
    }),
    reportsShipLag: true,
    phrase: 'WAL frames are replicated',
  },

  runbook: {
    what: (s) => `\`${s.path}\``,
    steps(s, { g, cmd, shell }) {
      const file = s.path as string;
      return [
        '1. Stop the application that writes the database.',
        '2. Restore as of a moment (or `--latest`) into a new file; it is checked with `integrity_check`:',
        '',
        '   ```sh',
        `   ${g} ${cmd(restoreInvocation(s, { target: `${file}.restored`, time: '2026-01-31T14:30:00Z' }))}`,
        '   ```',
        `3. Move it over the original: \`mv ${shell(`${file}.restored`)} ${shell(file)}\` (remove a stale \`${file}-wal\` first), then start the application.`,
        '4. A few tables only: add `--table NAME` (repeatable) and copy the rows you need.',
      ];
    },
  },

  commands: { words: ['sqlite'], load: () => import('./cli/sqlite.js') },
};
