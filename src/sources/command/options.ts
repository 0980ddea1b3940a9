/**
 * The lifeboat.yaml keys of a dump-command source, declared once (see
 * src/config/model.ts), and what they set. None is shared with another kind, so all
 * go to SourceConfig.settings as `commandSettings` parsed them; `settingsOf` reads
 * them back with the same schema.
 *
 *   sources:
 *     shop:   { kind: command, preset: mariadb, database: shop, dump: [--host=db1], env: { MYSQL_PWD: … } }
 *     graph:  { kind: command, dump: [neo4j-admin, database, dump, --to-stdout, neo4j] }
 */
import * as z from 'zod';
import type { SourceConfig } from '../../config/config.js';
import { lazily, option, text } from '../../config/schema.js';
import { LifeboatError } from '../../errors.js';
import { PRESETS, presetCommands } from './presets.js';

const argv = () => z.array(text(), { error: 'must be a list of strings (argv; never run by a shell)' }).min(1, { error: 'must name a program' });

/** An environment variable's name as POSIX shells accept it (values are never recorded, names are). */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const commandSettings = lazily(() => z.object({
  preset: option(z.enum(PRESETS, { error: `must be one of ${PRESETS.join(', ')}` }).optional(), {
    description: 'fills `dump` and `load` from a known tool (docs/command.md lists the exact commands); `dump` and `load` then add arguments to them',
    flag: '--preset',
  }),
  database: option(text().optional(), {
    description: "with a preset: the database (mariadb: one database instead of --all-databases; neo4j: default `neo4j`; mongodb: --db / --nsInclude)",
    flag: '--database',
  }),
  dump: option(argv().optional(), {
    description: 'the program and arguments whose stdout is the backup (argv, no shell); with a preset, arguments added to its dump command',
    example: '[pg_dumpall, --host=127.0.0.1]',
  }),
  load: option(argv().optional(), {
    description: '`command restore --load` pipes the stored dump into this program (argv, no shell); with a preset, arguments added to its load command',
  }),
  env: option(z.record(z.string().regex(ENV_NAME, { error: 'must be an environment variable name' }), z.string({ error: 'must be a string' }), { error: 'must be a map of NAME: value' }).optional(), {
    description: 'environment added to the dump and load commands (passwords go here or in the tool\'s option file, never in argv); snapshots record the names, never the values',
  }),
  cwd: option(text().optional(), { description: 'working directory of the dump and load commands (relative to lifeboat.yaml)' }),
}));

export const commandOptions = lazily(() => commandSettings());

export type CommandSettings = z.output<ReturnType<typeof commandSettings>>;

export function commandFields(o: CommandSettings): Partial<SourceConfig> {
  if (o.preset === undefined && o.dump === undefined) {
    throw new LifeboatError('CONFIG_INVALID', 'a command source needs "dump" (argv) or "preset"', { hint: 'e.g. dump: [pg_dumpall, --host=127.0.0.1], or preset: mariadb' });
  }
  if (o.database !== undefined && o.preset === undefined) {
    throw new LifeboatError('CONFIG_INVALID', '"database" goes with a preset', { hint: 'without a preset, name the database in the dump command itself' });
  }
  if (o.preset !== undefined) {
    try {
      presetCommands(o.preset, { database: o.database });
    } catch (err) {
      throw new LifeboatError('CONFIG_INVALID', err instanceof Error ? err.message : String(err), { hint: 'see docs/command.md for what each preset takes' });
    }
  }
  const settings: CommandSettings = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (settings as Record<string, unknown>)[k] = v;
  return { continuous: false, settings };
}

/** The source's own keys, read back with the schema that wrote them. */
export function settingsOf(s: Pick<SourceConfig, 'name' | 'settings'>): CommandSettings {
  const r = commandSettings().safeParse(s.settings ?? {});
  if (!r.success) throw new LifeboatError('CONFIG_INVALID', `source ${s.name}: its command settings do not parse`, { hint: 'check preset, database, dump, load, env and cwd in lifeboat.yaml' });
  return r.data;
}
