/**
 * The `oplog` kind of source: an application's own append-only journal (Engram's
 * operation log; any JSON-lines or length-prefixed record file, rotated or not),
 * shipped record by record so it restores to any moment: the records up to T, cut
 * between records, optionally replayed into a restored base by a command. Everything
 * generic code needs to know about it is here (the Source seam, src/sources/source.ts);
 * docs/oplog.md has the argument.
 */
import type { z } from 'zod';
import { restoreInvocation } from '../../engine/restore-options.js';
import type { SourceKind } from '../source.js';
import { logSource } from './names.js';
import { oplogFields, oplogOptions, settingsOf } from './options.js';
import { oplogPointSchema, type OplogPoint } from './point.js';

export const oplog: SourceKind<OplogPoint> = {
  name: 'oplog',
  get options() {
    return oplogOptions();
  },
  // The reader parsed the keys with oplogOptions: they are its output.
  fields: (o) => oplogFields(o as z.output<ReturnType<typeof oplogOptions>>),
  get point() {
    return oplogPointSchema();
  },

  reach: async (s, probe) => {
    const problem = s.path ? probe.file(s.path, 'file') : undefined;
    return problem ? [problem] : [];
  },

  jobs: {
    backup: (s) => {
      const o = settingsOf(s);
      return { command: ['oplog', 'backup'], positionals: [s.path as string], options: [['--name', s.name], ['--format', o.format], ['--time-field', o.time_field], ['--tag', s.tags]] };
    },
    drill: (s) => ({ command: ['drill'], options: [['--source', s.name]] }),
  },
  childEnv: () => ({}),

  restore: {
    command: ['oplog', 'restore'],
    options: [
      { flag: '', from: 'name' },
      { flag: '--output', from: 'target' },
      { flag: '--time', from: 'time' },
    ],
    startByDefault: false,
    measuresRto: false,
    targetExample: 'e.g. /var/tmp/oplog.restored.jsonl (a new file)',
    fieldsHint: 'give "time" (RFC 3339), or nothing for every record stored',
  },

  recover: {
    switchOver: (target, _l, _r, sh) => ['# replay the restored records into the application (one record per line, in order), e.g.:', `APPLICATION-REPLAY < ${sh(target)}`],
  },

  drill: {
    nameOf: (s) => s.source.name,
    run: async (repo, name, ctx) => (await import('./drill.js')).drillOplog(repo, name, ctx),
  },

  log: {
    sources: (name) => [logSource(name)],
    trim: async (repo, name, after, cutoff, opts) => (await import('./log-retention.js')).trimOplog(repo, name, after, cutoff, opts),
    reportAs: 'segments',
  },

  window: async (repo, name) => (await import('./window.js')).oplogWindow(repo, name),

  continuous: {
    method: 'replicate',
    invocation: (s) => {
      const o = settingsOf(s);
      return {
        command: ['oplog', 'replicate'],
        positionals: [s.path as string],
        options: [['--name', s.name], ['--interval', s.interval || undefined], ['--format', o.format], ['--time-field', o.time_field]],
      };
    },
    reportsShipLag: true,
    phrase: 'its records are shipped as they are appended',
  },

  runbook: {
    what: (s) => `the journal \`${s.path}\``,
    steps(s, { g, cmd, shell }) {
      const out = `${s.path as string}.restored`;
      const replay = settingsOf(s).replay_command;
      return [
        '1. Stop the application that appends to the journal.',
        '2. Restore its base (the source holding its data, e.g. a files or SQLite source) to its newest backup before the moment.',
        '3. Write the journal\'s records up to the moment to a new file (never half a record):',
        '',
        '   ```sh',
        `   ${g} ${cmd(restoreInvocation(s, { target: out, time: '2026-01-31T14:30:00Z' }))}`,
        '   ```',
        replay
          ? `4. Or replay them into the restored base at once: add \`--replay\` (runs the configured replay_command, \`${typeof replay === 'string' ? replay : replay.join(' ')}\`, with the records on its stdin).`
          : `4. Replay them into the restored base with the application's own tool, or move the file over the journal: \`mv ${shell(out)} ${shell(s.path as string)}\`.`,
      ];
    },
  },

  commands: { words: ['oplog'], load: () => import('./cli/oplog.js') },
};
