/** A configured command source's dump and load commands, as run (preset filled in, cwd resolved against lifeboat.yaml). */
import * as path from 'node:path';
import type { SourceConfig } from '../../config/config.js';
import { settingsOf } from './options.js';
import { presetCommands } from './presets.js';
import type { CommandSpec } from './run.js';

export interface SourceCommands {
  dump: CommandSpec;
  /** Undefined when the source names no load command (a restore then writes a file). */
  load: CommandSpec | undefined;
  preset: string | undefined;
}

export function sourceCommands(s: Pick<SourceConfig, 'name' | 'settings'>, configFile: string): SourceCommands {
  const o = settingsOf(s);
  const env = o.env ?? {};
  const cwd = o.cwd === undefined ? undefined : path.resolve(path.dirname(configFile), o.cwd);
  const spec = (argv: string[]): CommandSpec => ({ argv, env, cwd });
  if (o.preset !== undefined) {
    const c = presetCommands(o.preset, { database: o.database, dumpArgs: o.dump, loadArgs: o.load });
    return { dump: spec(c.dump), load: spec(c.load), preset: o.preset };
  }
  return { dump: spec(o.dump ?? []), load: o.load ? spec(o.load) : undefined, preset: undefined };
}
