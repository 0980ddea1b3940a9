/**
 * The redis kind for the conformance suite: a scratch Debian redis-server on a free
 * port without persistence (test/helpers/redis-server.ts), changed in place (strings,
 * hashes, sorted sets, a list, a key with a long expiry, a key in database 1; keys
 * added, rewritten and deleted). Its fingerprint is every key's type, value digest
 * (DEBUG DIGEST-VALUE) and expiry, read from the live server or from a restore's
 * dump.rdb loaded into a scratch server.
 *
 * Its log is `lifeboat redis replicate`, started with the command the daemon's
 * supervisor runs for a source with `replicate: true`. A moment is taken once the
 * replica has acknowledged every write so far (WAIT) and the replicator's status
 * proves everything up to now is stored.
 */
import { promises as fs, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { loadConfig, type SourceConfig } from '../../../src/config/config.js';
import { replicationCommand } from '../../../src/daemon/supervisor.js';
import { initRepo, runCli, tmpdir } from '../../helpers.js';
import { RedisReplicator } from '../../helpers/redis-replicator.js';
import { RedisServer, datasetOf, datasetOfRdb } from '../../helpers/redis-server.js';
import { nextMoment, type KindDriver, type LogDriver, type Subject } from '../driver.js';

export const redisDriver: KindDriver = {
  kind: 'redis',
  hasLog: true,
  async setup(): Promise<Subject> {
    const dir = tmpdir('lb-conform-redis-');
    const repo = path.join(dir, 'repo');
    const pw = path.join(dir, 'password');
    writeFileSync(pw, 'conformance-redis\n', { mode: 0o600 });
    const server = await RedisServer.start();
    await server.command(['SET', 'conformance:anchor', 'here from the start']);
    for (let i = 0; i < 20; i++) {
      await server.command(['SET', `s:${i}`, `initial ${i}`]);
      await server.command(['HSET', `h:${i % 5}`, `f${i}`, `v${i}`]);
      await server.command(['ZADD', 'board', i * 1.5, `player${i}`]);
    }
    const config = path.join(dir, 'lifeboat.yaml');
    writeFileSync(
      config,
      [
        'repositories:',
        '  main:',
        `    stores: [${repo}]`,
        `    password_file: ${pw}`,
        'sources:',
        '  cache:',
        '    kind: redis',
        `    url: ${server.url}`,
        '    interval: 200ms',
        "    checks: ['EXISTS conformance:anchor => 1']",
        '',
      ].join('\n'),
    );
    const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { LIFEBOAT_PASSWORD: undefined, ...env });
    await initRepo(repo, 'conformance-redis');

    let replication: RedisReplicator | undefined;
    const log: LogDriver = {
      async start() {
        if (replication) return;
        const c = loadConfig(config);
        const source = c.sources.get('cache') as SourceConfig;
        const args = ['--json', '--config', config, '--repo', source.repository, ...replicationCommand(source, path.join(dir, 'state'))];
        replication = new RedisReplicator(args, { LIFEBOAT_CONFIG: config });
        await replication.until((e) => e.kind === 'snapshot', 'the first snapshot of redis replicate');
      },
      async stop() {
        await replication?.stop();
        replication = undefined;
      },
    };
    return {
      config,
      source: 'cache',
      cli,
      target: (label) => path.join(dir, `restored-${label}`),
      async change(step) {
        const c = await server.client();
        try {
          await c.ok(['SET', `s:${step}`, `rewritten in step ${step}`]);
          await c.ok(['APPEND', 's:0', `+${step}`]);
          await c.ok(['DEL', `s:${10 + step}`]);
          await c.ok(['HSET', `h:${step % 5}`, `step${step}`, 'added', 'f0', `rewritten ${step}`]);
          await c.ok(['HDEL', `h:${(step + 1) % 5}`, `f${step + 1}`]);
          await c.ok(['ZINCRBY', 'board', step, `player${step}`]);
          await c.ok(['ZREM', 'board', `player${19 - step}`]);
          await c.ok(['RPUSH', 'journal', `step ${step}`]);
          await c.ok(['INCR', 'steps']);
          await c.ok(['SET', `session:${step}`, 'long-lived', 'EX', 7200]);
          await c.ok(['MULTI']);
          await c.ok(['INCRBY', 'balance:a', -step]);
          await c.ok(['INCRBY', 'balance:b', step]);
          await c.ok(['EXEC']);
          await c.ok(['SELECT', 1]);
          await c.ok(['HSET', 'other-db', `step${step}`, String(step)]);
        } finally {
          c.close();
        }
      },
      fingerprint: () => datasetOf(server),
      restored: (target) => datasetOfRdb(path.join(target, 'dump.rdb')),
      async moment() {
        if (replication) {
          // The replica has every write so far (it acknowledged the offset), and it is stored.
          const acked = await server.command(['WAIT', 1, 20_000]);
          if (acked !== 1) throw new Error(`redis replicate did not acknowledge the writes (WAIT answered ${String(acked)})${replication.tail()}`);
          await replication.archived(Date.now());
        }
        return nextMoment();
      },
      restoresSnapshotIds: true,
      log,
      async close() {
        await replication?.stop().catch(() => {});
        await server.stop();
        await fs.rm(dir, { recursive: true, force: true });
      },
    };
  },
};
