/**
 * Test helpers for Redis restores: a history (a base RDB snapshot plus command segments
 * with marks) written straight through the Repository API, so restore tests do not
 * depend on the shipping side. Scratch servers are test/helpers/redis-server.ts.
 */
import { Readable } from 'node:stream';
import { backupStream } from '../src/engine/backup/stream.js';
import type { Repository } from '../src/repo/repository.js';
import type { Snapshot } from '../src/repo/snapshot/snapshot.js';
import { logSource } from '../src/sources/redis/names.js';
import type { RedisPoint } from '../src/sources/redis/point.js';
import { encodeCommand } from '../src/sources/redis/resp.js';
import { encodeSegment, segmentName, type Mark } from '../src/sources/redis/segment.js';

export const REPLID = 'a'.repeat(40);
export const GENERATION = 'b'.repeat(20);

/** A base snapshot as the replicator stores one: the RDB as dump.rdb, with its point. */
export async function storeBase(repo: Repository, name: string, rdb: Buffer, point: Omit<RedisPoint, 'rdbBytes' | 'replid'> & { replid?: string }, time: Date): Promise<Snapshot> {
  const full: RedisPoint = { replid: REPLID, rdbBytes: rdb.length, ...point };
  return backupStream(repo, Readable.from([rdb]), {
    path: `/redis/${name}/dump.rdb`,
    source: { kind: 'redis', name },
    time,
    beforeSnapshot: async () => full as unknown as Record<string, unknown>,
  });
}

/** One step of history: commands whose bytes all arrived at `time`; a mark follows the step (never inside it). */
export interface Step {
  cmds: Array<Array<string | number>>;
  time: number;
}

/** Stores steps as segments (`perSegment` steps each) from `offset`, leaving out the segments numbered in `skip`; returns the end offset and each step's mark. */
export async function storeSegments(
  repo: Repository,
  name: string,
  generation: string,
  offset: number,
  steps: Step[],
  perSegment = 3,
  skip: readonly number[] = [],
): Promise<{ end: number; marks: Mark[] }> {
  const all: Mark[] = [];
  let at = offset;
  for (let i = 0; i < steps.length; i += perSegment) {
    const start = at;
    const parts: Buffer[] = [];
    const marks: Mark[] = [];
    for (const step of steps.slice(i, i + perSegment)) {
      for (const c of step.cmds) {
        const b = encodeCommand(c);
        parts.push(b);
        at += b.length;
      }
      marks.push([at, step.time]);
    }
    const meta = { v: 1 as const, replid: REPLID, start, end: at, marks };
    if (!skip.includes(i / perSegment)) await repo.putLog(logSource(name), generation, segmentName(meta), encodeSegment({ meta, stream: Buffer.concat(parts) }));
    all.push(...marks);
  }
  return { end: at, marks: all };
}
