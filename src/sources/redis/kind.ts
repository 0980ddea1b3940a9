/**
 * The `redis` kind of source: a Redis server, backed up over the replication protocol
 * (an RDB pulled as a replica would, without touching the server's disk or settings)
 * and, with `replicate: true`, kept attached as a replica whose command stream is
 * shipped in segments, so it restores to any second. Everything generic code needs to
 * know about it is here (the Source seam, src/sources/source.ts); the work is in this
 * folder, and docs/redis.md has the argument.
 */
import * as path from 'node:path';
import type { z } from 'zod';
import { TXN_OPTIONS, restoreInvocation } from '../../engine/restore-options.js';
import type { SourceKind } from '../source.js';
import { readRedisPasswordFile } from './password.js';
import { logSource } from './names.js';
import { redisFields, redisOptions } from './options.js';
import { redisPointSchema, type RedisPoint } from './point.js';

export const redis: SourceKind<RedisPoint> = {
  name: 'redis',
  get options() {
    return redisOptions();
  },
  // The reader parsed the keys with redisOptions: they are its output.
  fields: (o) => redisFields(o as z.output<ReturnType<typeof redisOptions>>),
  get point() {
    return redisPointSchema();
  },

  async reach(s, probe) {
    if (!s.url) return [];
    const { parseRedisUrl, redisPassword, RedisConnection } = await import('./connection.js');
    try {
      const target = parseRedisUrl(s.url);
      const password = redisPassword({ passwordFile: s.passwordFile === undefined ? undefined : probe.resolve(s.passwordFile) });
      const conn = await probe.within(RedisConnection.open(target, { password, timeoutMs: 5000 }), 'Redis');
      try {
        await probe.within(conn.ok(['PING']), 'Redis');
      } finally {
        conn.close();
      }
      return [];
    } catch (err) {
      return [err instanceof Error ? err.message : String(err)];
    }
  },

  jobs: {
    backup: (s) => ({ command: ['redis', 'backup'], options: [['--name', s.name], ['--url', s.url], ['--tag', s.tags]] }),
    drill: (s) => ({ command: ['drill'], options: [['--source', s.name], ['--check', s.checks]] }),
  },

  /** The password (from password_file, resolved against lifeboat.yaml) in LIFEBOAT_REDIS_PASSWORD, never on argv. */
  childEnv(s, configFile) {
    if (s.passwordFile === undefined) return {};
    // Read here, synchronously, as the seam asks: a missing file fails the job before it starts.
    const file = path.resolve(path.dirname(configFile), s.passwordFile);
    return { LIFEBOAT_REDIS_PASSWORD: readRedisPasswordFile(file) };
  },

  restore: {
    command: ['redis', 'restore'],
    options: [
      { flag: '', from: 'name' },
      { flag: '--output', from: 'target' },
      { flag: '--time', from: 'time' },
      { flag: '--snapshot', from: 'snapshot' },
      ...TXN_OPTIONS,
      { flag: '--check', from: 'checks' },
    ],
    startByDefault: false,
    measuresRto: false,
    targetExample: 'e.g. /var/tmp/redis-restore (a new directory; dump.rdb is written in it)',
    fieldsHint: 'give "time" (RFC 3339), "snapshot", "txn" or "before_txn" (numbers: `redis history`), or nothing for the newest data',
  },

  recover: {
    switchOver: (target, _l, _r, sh) => [
      '# stop the Redis server (redis-cli shutdown nosave), then put the restored RDB in its dir (CONFIG GET dir):',
      `cp ${sh(`${target}/dump.rdb`)} REDIS_DIR/dump.rdb`,
      '# with appendonly yes, remove the old AOF (or start with --appendonly no and rewrite it), then start the server',
    ],
  },

  drill: {
    nameOf: (s) => s.source.name,
    run: async (repo, name, ctx) => (await import('./drill.js')).drillRedis(repo, name, ctx),
  },

  log: {
    sources: (name) => [logSource(name)],
    trim: async (repo, name, after, cutoff, opts) => (await import('./log-retention.js')).trimRedis(repo, name, after, cutoff, opts),
    reportAs: 'segments',
  },

  window: async (repo, name) => (await import('./window.js')).redisWindow(repo, name),

  continuous: {
    method: 'replicate',
    invocation: (s) => ({
      command: ['redis', 'replicate'],
      options: [['--name', s.name], ['--url', s.url], ['--interval', s.interval || undefined], ['--snapshot-interval', s.snapshotInterval || undefined]],
    }),
    reportsShipLag: true,
    phrase: 'the command stream is replicated',
  },

  runbook: {
    what: (s) => `the server at \`${s.url ?? ''}\``,
    steps(s, { g, cmd }) {
      const dir = `/var/tmp/redis-restore-${s.name}`;
      return [
        '1. Stop the clients that write (or point them away from the damaged server).',
        '2. Restore as of a moment (or the newest data) into a new directory; the result is loaded into a scratch server, checked and saved as `dump.rdb`:',
        '',
        '   ```sh',
        `   ${g} ${cmd(restoreInvocation(s, { target: dir, time: '2026-01-31T14:30:00Z' }))}`,
        '   ```',
        `3. Either stop the server, put \`${dir}/dump.rdb\` in its \`dir\` (CONFIG GET dir) under its \`dbfilename\`, and start it; or load it into a running, empty server with \`--to redis://HOST:PORT\` instead of \`--output\`.`,
        `4. A server with appendonly on reads its AOF, not dump.rdb: start it with \`appendonly no\`, then \`CONFIG SET appendonly yes\` once it is up.`,
      ];
    },
  },

  commands: { words: ['redis'], load: () => import('./cli/redis.js') },
};
