/**
 * Snapshots of a Redis server: an RDB pulled over the replication protocol (sync.ts),
 * as a replica would receive it, streamed through the repository's chunker as the one
 * file `dump.rdb`, so the server's disk and settings are never touched (it works with
 * persistence off) and a second snapshot stores only the chunks that changed. The
 * consistency point is where the RDB stands in the server's replication history
 * (point.ts); the replicator stores its generations' bases the same way.
 */
import { Readable } from 'node:stream';
import { backupStream } from '../../engine/backup/stream.js';
import type { ProgressFn } from '../../engine/progress.js';
import { checkSourceName } from '../../engine/source-name.js';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { RedisConnection, keyspace, parseRedisUrl, type RedisTarget } from './connection.js';
import { RDB_FILE, logSource } from './names.js';
import type { RedisPoint } from './point.js';
import { ReplicaLink } from './sync.js';

/** `--name` defaults to the server's address: redis://cache.internal:6379 is "cache.internal-6379". */
export function defaultName(target: RedisTarget): string {
  const raw = `${target.host}-${target.port}`.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return checkSourceName(raw.slice(0, 64) || 'redis');
}

/**
 * What the server says of itself just before an RDB is taken (INFO on a connection of
 * its own), with the replication offset it was at: the key counts describe the RDB only
 * when the RDB is taken at that same offset (no write in between).
 */
export type ServerFacts = Pick<RedisPoint, 'runId' | 'redisVersion' | 'usedMemory' | 'keys' | 'datasetMemory'> & { offset?: number };

export async function serverFacts(target: RedisTarget, password: string | undefined, signal?: AbortSignal): Promise<ServerFacts> {
  const conn = await RedisConnection.open(target, { password, ...(signal ? { signal } : {}) });
  try {
    const info = await conn.info();
    const runId = info.get('run_id');
    const version = info.get('redis_version');
    const used = Number(info.get('used_memory'));
    const dataset = Number(info.get('used_memory_dataset'));
    const offset = Number(info.get('master_repl_offset'));
    return {
      ...(Number.isSafeInteger(offset) && offset >= 0 ? { offset } : {}),
      ...(runId && /^[0-9a-f]{40}$/.test(runId) ? { runId } : {}),
      ...(version ? { redisVersion: version.slice(0, 64) } : {}),
      ...(Number.isSafeInteger(used) && used >= 0 ? { usedMemory: used } : {}),
      ...(Number.isSafeInteger(dataset) && dataset >= 0 ? { datasetMemory: dataset } : {}),
      keys: keyspace(info),
    };
  } finally {
    conn.close();
  }
}

export interface RdbSnapshotOptions {
  name: string;
  tags?: string[];
  facts: ServerFacts;
  /** Set on the replicator's snapshots. */
  generation?: string;
  onProgress?: ProgressFn;
}

/** Stores the RDB of `link` (which must have started a full synchronisation) as a snapshot; the link stays open. */
export async function rdbSnapshot(repo: Repository, link: ReplicaLink, opts: RdbSnapshotOptions): Promise<Snapshot> {
  const { start } = link;
  if (start.mode !== 'full') throw new Error('rdbSnapshot: the link continues a history, it has no RDB');
  return backupStream(repo, Readable.from(link.rdb(), { objectMode: false }), {
    path: `/redis/${opts.name}/${RDB_FILE}`,
    source: { kind: 'redis', name: opts.name },
    tags: opts.tags ?? [],
    time: new Date(),
    beforeSnapshot: async () => {
      // Counts read at another offset are not the RDB's (a write came between): not recorded, so never compared.
      const { offset, keys, datasetMemory, ...facts } = opts.facts;
      const point: RedisPoint = {
        replid: start.replid,
        offset: start.offset,
        ...facts,
        ...(keys && offset === start.offset ? { keys } : {}),
        ...(datasetMemory !== undefined && offset === start.offset ? { datasetMemory } : {}),
        ...(opts.generation ? { generation: opts.generation } : {}),
        rdbBytes: link.rdbBytes,
      };
      if (point.rdbBytes < 9) throw new LifeboatError('SOURCE_UNAVAILABLE', `Redis at ${link.target.display} sent an RDB of ${point.rdbBytes} bytes`, { hint: 'the transfer was cut short; try again' });
      return point as unknown as Record<string, unknown>;
    },
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
}

export interface RedisBackupOptions {
  url?: string;
  target?: RedisTarget;
  password?: string | undefined;
  name?: string;
  tags?: string[];
  signal?: AbortSignal;
  onProgress?: ProgressFn;
}

/** One snapshot of the whole server (every database), consistent at one replication offset. */
export async function redisBackup(repo: Repository, opts: RedisBackupOptions): Promise<Snapshot> {
  const target = opts.target ?? (opts.url !== undefined ? parseRedisUrl(opts.url) : undefined);
  if (!target) throw new LifeboatError('USAGE', 'a Redis backup needs the server\'s URL', { hint: 'give --url redis://HOST:PORT' });
  const name = opts.name ?? defaultName(target);
  logSource(name); // refuses a name that cannot be a source before the server is touched
  const facts = await serverFacts(target, opts.password, opts.signal);
  const link = await ReplicaLink.open(target, { password: opts.password, rdbOnly: true, ...(opts.signal ? { signal: opts.signal } : {}) });
  try {
    return await rdbSnapshot(repo, link, {
      name,
      facts,
      ...(opts.tags ? { tags: opts.tags } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
  } finally {
    link.close();
  }
}
