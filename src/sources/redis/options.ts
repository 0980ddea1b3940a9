/** The lifeboat.yaml keys of a Redis source, declared once (see src/config/model.ts), and what they set. */
import * as z from 'zod';
import type { SourceConfig } from '../../config/config.js';
import { duration, lazily, option, text, texts, yesNo } from '../../config/schema.js';
import { formatDuration } from '../../util/duration.js';

/** Also `lifeboat redis …`'s flags of the same names (cli/redis.ts). */
export const redisOptions = lazily(() => z.object({
  url: option(text(), { description: 'where the server is, redis://[user@]host:port (rediss:// for TLS); never with a password', example: 'redis://127.0.0.1:6379', flag: '--url' }),
  password_file: option(text().optional(), { description: 'a 0600 file whose first line is the password (with the URL\'s user, an ACL login), kept out of argv and logs; relative to lifeboat.yaml. Otherwise LIFEBOAT_REDIS_PASSWORD' }),
  replicate: option(yesNo().optional(), { description: 'keep `lifeboat redis replicate` running (restore to any second)', shown: 'false' }),
  interval: option(duration().optional(), { description: 'how often the received command stream is shipped (the data-loss window)', flag: '--interval', shown: '1s' }),
  snapshot_interval: option(duration().optional(), { description: 'how often a fresh RDB bounds the commands a restore replays', flag: '--snapshot-interval', shown: '1h' }),
  checks: option(texts().optional(), {
    description: 'checks a restored copy must pass: `COMMAND ARG… => REPLY` (e.g. `EXISTS config:main => 1`); restores and drills run them',
    flag: '--check',
  }),
}));

/** The intervals are handed to `redis replicate` as flags: their canonical spelling, which its parser reads back to the same value. */
export function redisFields(o: z.output<ReturnType<typeof redisOptions>>): Partial<SourceConfig> {
  return {
    url: o.url,
    continuous: o.replicate ?? false,
    ...(o.password_file !== undefined ? { passwordFile: o.password_file } : {}),
    ...(o.interval !== undefined ? { interval: formatDuration(o.interval) } : {}),
    ...(o.snapshot_interval !== undefined ? { snapshotInterval: formatDuration(o.snapshot_interval) } : {}),
    ...(o.checks !== undefined ? { checks: o.checks } : {}),
  };
}
