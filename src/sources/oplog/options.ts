/**
 * The lifeboat.yaml keys of an operation-log source, declared once (see
 * src/config/model.ts), and what they set. The keys no other kind shares (format,
 * time_field, replay_command) go to SourceConfig.settings as `oplogSettings` parsed
 * them; `settingsOf` reads them back with the same schema.
 */
import * as z from 'zod';
import type { SourceConfig } from '../../config/config.js';
import { LifeboatError } from '../../errors.js';
import { duration, lazily, oneOf, option, text, yesNo } from '../../config/schema.js';
import { formatDuration } from '../../util/duration.js';

export const FORMATS = ['jsonl', 'u32be'] as const;
export type RecordFormat = (typeof FORMATS)[number];

/** The kind's own keys (also `lifeboat oplog …`'s flags of the same names, cli/oplog.ts). */
export const oplogSettings = lazily(() => z.object({
  format: option(oneOf(FORMATS).optional(), {
    description: 'how records are framed: `jsonl` (one JSON document a line) or `u32be` (a 4-byte big-endian length, then that many bytes)',
    flag: '--format',
    shown: 'jsonl',
  }),
  time_field: option(text().optional(), {
    description: "the JSON field holding each record's time (RFC 3339, or Unix ms/s as a number; `a.b` for a nested one); without it a record's time is when it was shipped",
    flag: '--time-field',
  }),
  replay_command: option(z.union([text(), z.array(text(), { error: 'must be a list of strings' }).min(1, { error: 'must name a program' })], { error: 'must be a string or a list of strings' }).optional(), {
    description: '`oplog restore --replay` pipes the restored records into this program (a list is its argv; a string is split into words at spaces, never by a shell); its exit status decides success',
  }),
}));

export const oplogOptions = lazily(() => z.object({
  path: option(text(), { description: 'the journal file (appended to, rotated by rename or truncated)', example: '/var/lib/engram/oplog.jsonl' }),
  replicate: option(yesNo().optional(), { description: 'keep `lifeboat oplog replicate` running', shown: 'false' }),
  interval: option(duration().optional(), { description: 'how often new records are shipped (the data-loss window)', flag: '--interval', shown: '1s' }),
  ...oplogSettings().shape,
}));

export type OplogSettings = z.output<ReturnType<typeof oplogSettings>>;

export function oplogFields(o: z.output<ReturnType<typeof oplogOptions>>): Partial<SourceConfig> {
  const settings: OplogSettings = {
    ...(o.format !== undefined ? { format: o.format } : {}),
    ...(o.time_field !== undefined ? { time_field: o.time_field } : {}),
    ...(o.replay_command !== undefined ? { replay_command: o.replay_command } : {}),
  };
  return {
    path: o.path,
    continuous: o.replicate ?? false,
    settings,
    ...(o.interval !== undefined ? { interval: formatDuration(o.interval) } : {}),
  };
}

/** The source's own keys, read back with the schema that wrote them (CONFIG_INVALID if something else put them there). */
export function settingsOf(s: Pick<SourceConfig, 'name' | 'settings'>): OplogSettings {
  const r = oplogSettings().safeParse(s.settings ?? {});
  if (!r.success) throw new LifeboatError('CONFIG_INVALID', `source ${s.name}: its oplog settings do not parse`, { hint: 'check format, time_field and replay_command in lifeboat.yaml' });
  return r.data;
}

/** A configured command as argv: a list as it is, a string split at whitespace (no shell, no quoting). */
export function commandWords(c: string | readonly string[]): string[] {
  const words = typeof c === 'string' ? c.trim().split(/\s+/).filter(Boolean) : [...c];
  if (words.length === 0) throw new LifeboatError('USAGE', 'the replay command is empty', { hint: 'name a program, e.g. replay_command: [node, /srv/engram/replay.js]' });
  return words;
}
