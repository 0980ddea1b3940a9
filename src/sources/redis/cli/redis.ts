/**
 * lifeboat redis backup | replicate (| restore, from ./restore.ts) — snapshots of a
 * Redis server over the replication protocol, and continuous shipping of its command
 * stream. The password comes from --redis-password-file or the environment, never argv.
 */
import type { Command } from 'commander';
import { withRepo, type GlobalOptions } from '../../../cli/context.js';
import { collect, flagOf } from '../../../cli/commands/options.js';
import { snapshotJson } from '../../../cli/commands/snapshots.js';
import { progressFor, duration, printJson } from '../../../cli/output/render.js';
import { LifeboatError } from '../../../errors.js';
import { formatBytes } from '../../../util/bytes.js';
import { durationMs, type Duration } from '../../../util/duration.js';
import { defaultName, redisBackup } from '../backup.js';
import { parseRedisUrl, redisPassword, type RedisTarget } from '../connection.js';
import { redisOptions } from '../options.js';
import { requireRedisPoint } from '../point.js';
import { replicate, type ReplicateEvent } from '../replicate.js';
import { registerHistory } from './history.js';
import { registerRestore } from './restore.js';
import { renderReplicateEvent } from '../../../cli/output/replicate-events.js';
import { stopSignal } from '../../../cli/stop-signal.js';

interface ServerFlags {
  url?: string;
  name?: string;
  redisPasswordFile?: string;
}

function server(f: ServerFlags): { target: RedisTarget; password: string | undefined; name: string } {
  if (f.url === undefined) throw new LifeboatError('USAGE', 'no Redis server given', { hint: 'give --url redis://HOST:PORT' });
  const target = parseRedisUrl(f.url);
  const password = redisPassword({ passwordFile: f.redisPasswordFile });
  return { target, password, name: f.name ?? defaultName(target) };
}

export function register(program: Command): void {
  const redis = program.command('redis').description('Redis: snapshots over the replication protocol, continuous command shipping, restore to any second');

  redis
    .command('backup')
    .description('an RDB of the whole server, pulled as a replica would (the server\'s disk and settings are not touched)')
    .addOption(flagOf(redisOptions().shape.url, { arg: '<url>' }))
    .option('--name <name>', 'name in the repository (default: host-port of the URL)')
    .option('--tag <tag>', 'tag the snapshot (repeatable)', collect, [])
    .option('--redis-password-file <file>', 'a file whose first line is the Redis password (else LIFEBOAT_REDIS_PASSWORD or REDISCLI_AUTH; --password-file is the repository\'s)')
    .action(async (f: ServerFlags & { tag: string[] }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { target, password, name } = server(f);
      await withRepo(g, async (repo) => {
        const bar = progressFor(g);
        const stop = stopSignal();
        const s = await redisBackup(repo, { target, password, name, tags: f.tag, signal: stop.signal, onProgress: bar.update }).finally(() => {
          bar.done();
          stop.release();
        });
        const point = requireRedisPoint(s);
        if (g.json) return printJson({ ...snapshotJson(s), point });
        if (!g.quiet) {
          const keys = Object.values(point.keys ?? {}).reduce((a, b) => a + b, 0);
          console.log(
            `snapshot ${s.id.slice(0, 8)} of ${name}: RDB ${formatBytes(point.rdbBytes)} (${keys} keys), ` +
              `added ${formatBytes(s.summary.addedBytes)} in ${duration(s.summary.durationMs)}; offset ${point.offset} of ${point.replid.slice(0, 8)}`,
          );
        }
      });
    });

  redis
    .command('replicate')
    .description('stay attached as a replica and ship the command stream every interval until SIGINT/SIGTERM (final ship on a clean stop)')
    .addOption(flagOf(redisOptions().shape.url, { arg: '<url>' }))
    .option('--name <name>', 'name in the repository (default: host-port of the URL)')
    .option('--redis-password-file <file>', 'a file whose first line is the Redis password (else LIFEBOAT_REDIS_PASSWORD or REDISCLI_AUTH; --password-file is the repository\'s)')
    .addOption(flagOf(redisOptions().shape.interval, { default: '1s' }))
    .addOption(flagOf(redisOptions().shape.snapshot_interval, { default: '1h' }))
    .action(async (f: ServerFlags & { interval: Duration; snapshotInterval: Duration }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { target, password, name } = server(f);
      await withRepo(g, async (repo) => {
        const stop = stopSignal();
        try {
          const summary = await replicate(repo, {
            target,
            password,
            name,
            intervalMs: durationMs(f.interval),
            snapshotIntervalMs: durationMs(f.snapshotInterval),
            signal: stop.signal,
            onEvent: (e) => renderReplicateEvent(e, g, eventLine, ['loss']),
          });
          if (g.json) printJson({ kind: 'stopped', ...summary });
          else if (!g.quiet) {
            console.log(`stopped: ${formatBytes(summary.bytes)} of commands in ${summary.segments} segments, ${summary.snapshots} snapshots (generation ${summary.generation})`);
          }
        } finally {
          stop.release();
        }
      });
    });

  registerHistory(redis);
  registerRestore(redis);
}

/** What `redis replicate` says about its own events (the rest is renderReplicateEvent's). */
function eventLine(e: ReplicateEvent): string | undefined {
  if (e.kind === 'generation') return `generation ${e.generation} (${e.reason}) at offset ${e.offset} of ${e.replid.slice(0, 8)}`;
  if (e.kind === 'snapshot') return `snapshot ${e.id.slice(0, 8)}: RDB ${formatBytes(e.bytes)}, added ${formatBytes(e.addedBytes)} at offset ${e.offset}`;
  return undefined;
}
