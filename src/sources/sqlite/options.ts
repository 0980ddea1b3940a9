/** The lifeboat.yaml keys of a SQLite source, declared once (see src/config/model.ts), and what they set. */
import * as z from 'zod';
import type { SourceConfig } from '../../config/config.js';
import { duration, lazily, option, text, yesNo } from '../../config/schema.js';
import { formatDuration } from '../../util/duration.js';
import { checkGraphDeclaration, graphOption } from '../graph/options.js';

/** Also `lifeboat sqlite replicate`'s flags of the same names (cli/sqlite.ts). */
export const sqliteOptions = lazily(() => z.object({
  path: option(text(), { description: 'the database file', example: '/var/lib/app/memory.db' }),
  replicate: option(yesNo().optional(), { description: 'keep `lifeboat sqlite replicate` running', shown: 'false' }),
  interval: option(duration().optional(), { description: 'how often new transactions are shipped (the data-loss window)', flag: '--interval', shown: '1s' }),
  snapshot_interval: option(duration().optional(), { description: 'how often a fresh snapshot bounds restore time', flag: '--snapshot-interval', shown: '1h' }),
  verify_interval: option(z.union([z.literal('off'), duration()], { error: 'must be a duration or off' }).optional(), {
    description: 'how often the shipped history is compared with the live database page by page; `off`: never',
    flag: '--verify-interval',
    shown: '1min',
  }),
  graph: graphOption(),
}));

/** The intervals are handed to `sqlite replicate` as flags: their canonical spelling, which its parser reads back to the same value. */
export function sqliteFields(o: z.output<ReturnType<typeof sqliteOptions>>): Partial<SourceConfig> {
  return {
    path: o.path,
    continuous: o.replicate ?? false,
    ...(o.interval !== undefined ? { interval: formatDuration(o.interval) } : {}),
    ...(o.snapshot_interval !== undefined ? { snapshotInterval: formatDuration(o.snapshot_interval) } : {}),
    ...(o.verify_interval !== undefined ? { verifyInterval: o.verify_interval === 'off' ? 'off' : formatDuration(o.verify_interval) } : {}),
    ...(o.graph !== undefined ? { graph: checkGraphDeclaration(o.graph) } : {}),
  };
}
