/**
 * The `command` kind of source: any program whose stdout is a backup and whose stdin
 * restores it (mariadb-dump / mariadb, neo4j-admin database dump / load, mongodump /
 * mongorestore, pg_dumpall / psql, redis-cli --rdb -), stored deduplicated as one file
 * per snapshot. Everything generic code needs to know about it is here (the Source
 * seam, src/sources/source.ts); docs/command.md has the argument and the presets.
 */
import * as path from 'node:path';
import type { z } from 'zod';
import { NAME_OUTPUT_TIME_SNAPSHOT, restoreInvocation } from '../../engine/restore-options.js';
import { findExecutable } from '../../util/tied-child.js';
import type { SourceKind } from '../source.js';
import { commandFields, commandOptions, settingsOf } from './options.js';
import { commandPointSchema, type CommandPoint } from './point.js';
import { sourceCommands } from './spec.js';

export const command: SourceKind<CommandPoint> = {
  name: 'command',
  get options() {
    return commandOptions();
  },
  // The reader parsed the keys with commandOptions: they are its output.
  fields: (o) => commandFields(o as z.output<ReturnType<typeof commandOptions>>),
  get point() {
    return commandPointSchema();
  },

  async reach(s, probe) {
    const o = settingsOf(s);
    const problems: string[] = [];
    if (o.cwd !== undefined && path.isAbsolute(o.cwd)) {
      const p = probe.file(o.cwd, 'directory');
      if (p) problems.push(p);
    }
    try {
      const { dump, load } = sourceCommands(s, path.join(process.cwd(), 'lifeboat.yaml'));
      for (const [role, c] of [['dump', dump], ['load', load]] as const) {
        const program = c?.argv[0];
        if (program !== undefined && !program.includes('/') && !findExecutable(program)) problems.push(`the ${role} command ${program} is not on the PATH`);
      }
    } catch (err) {
      problems.push(err instanceof Error ? err.message : String(err));
    }
    return problems;
  },

  jobs: {
    // The dump, its environment and cwd are read from lifeboat.yaml by the command itself: never on argv.
    backup: (s) => ({ command: ['command', 'backup'], options: [['--name', s.name], ['--tag', s.tags]] }),
    drill: (s) => ({ command: ['drill'], options: [['--source', s.name]] }),
  },
  childEnv: () => ({}),

  restore: {
    command: ['command', 'restore'],
    options: NAME_OUTPUT_TIME_SNAPSHOT,
    startByDefault: false,
    measuresRto: false,
    targetExample: 'e.g. /var/tmp/shop.dump (a new file)',
    fieldsHint: 'give "time" (RFC 3339) or "snapshot", or nothing for the newest dump',
  },

  drill: {
    nameOf: (s) => s.source.name,
    run: async (repo, name, ctx) => (await import('./drill.js')).drillCommand(repo, name, ctx),
  },

  runbook: {
    what: (s) => {
      const o = settingsOf(s);
      return o.preset ? `the ${o.preset} preset's dump${o.database ? ` of \`${o.database}\`` : ''}` : `the output of \`${(o.dump ?? []).join(' ')}\``;
    },
    steps(s, { g, cmd, shell }) {
      const o = settingsOf(s);
      const out = `/var/tmp/${s.name}.dump`;
      const hasLoad = o.preset !== undefined || o.load !== undefined;
      return [
        '1. Stop what writes to the data (or point it away), and have an empty target ready if the load command needs one.',
        '2. Write the newest dump (or the one before a moment, with `--time`) to a new file and look at it:',
        '',
        '   ```sh',
        `   ${g} ${cmd(restoreInvocation(s, { target: out }))}`,
        '   ```',
        hasLoad
          ? `3. Load it into the configured load command (${o.preset ? `the ${o.preset} preset's, docs/command.md` : `\`${(o.load ?? []).join(' ')}\``}), or give another load command after \`--\` instead of \`--load\`:`
          : '3. Load it with the tool that reads it, or pipe it straight into one (its exit status decides success):',
        '',
        '   ```sh',
        hasLoad ? `   ${g} ${cmd({ command: ['command', 'restore'], positionals: [s.name], options: [['--load', true]] })}` : `   ${g} command restore ${shell(s.name)} -- LOAD-COMMAND ARG…`,
        '   ```',
      ];
    },
  },

  commands: { words: ['command'], load: () => import('./cli/command.js') },
};
