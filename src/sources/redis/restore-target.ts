/**
 * Loading restored data into a running Redis server (`redis restore --to URL`): only
 * into an empty one unless forced, key by key (SCAN, DUMP and PEXPIRETIME on the scratch
 * server; RESTORE … REPLACE on the target), pipelined in bounded batches.
 *
 * Why not replace the target's dump.rdb: that needs its host, its stop and start; a
 * running server only needs a client. A key whose time to live has run out by now is
 * not copied (the target would drop it at once anyway).
 */
import { LifeboatError } from '../../errors.js';
import { keyspace, RedisConnection, replyError, type RedisTarget } from './connection.js';
import { RespError, asText, type RespValue } from './resp.js';
import type { CheckResult } from './verify.js';

/** Keys asked for per SCAN. */
const BATCH = 200;
/**
 * Keys whose DUMP payloads are held at once: round trips stay few, and memory stays
 * at this many values (each at most Redis's own 512 MB bulk limit).
 */
const PIPELINE = 32;

/** TARGET_EXISTS when the server holds any key. */
export async function refuseNonEmpty(target: RedisTarget, password: string | undefined): Promise<void> {
  const conn = await RedisConnection.open(target, { password });
  try {
    const held = keyspace(await conn.info('keyspace'));
    const total = Object.values(held).reduce((a, b) => a + b, 0);
    if (total > 0) {
      throw new LifeboatError('TARGET_EXISTS', `Redis at ${target.display} already holds ${total} keys (${Object.entries(held).map(([d, n]) => `${d}=${n}`).join(' ')}); nothing was written`, {
        hint: 'load into an empty server, or pass --force to write the restored keys over its own (keys it has that the backup lacks stay)',
      });
    }
  } finally {
    conn.close();
  }
}

function dbIndex(db: string): number {
  return Number(db.slice(2));
}

/**
 * Copies every live key of the databases in `keys` from `from` to the target. The
 * check compares what the target holds afterwards with what was copied (exact when it
 * was empty, at least as many with --force).
 */
export async function copyInto(
  from: RedisConnection,
  keys: Record<string, number>,
  target: RedisTarget,
  opts: { password: string | undefined; force: boolean },
): Promise<{ loaded: Record<string, number>; check: CheckResult }> {
  const to = await RedisConnection.open(target, { password: opts.password, clientName: 'lifeboat-restore' });
  try {
    if (!opts.force) await refuseNonEmpty(target, opts.password);
    const loaded: Record<string, number> = {};
    for (const db of Object.keys(keys).sort((a, b) => dbIndex(a) - dbIndex(b))) {
      await from.ok(['SELECT', dbIndex(db)], 'SELECT');
      await to.ok(['SELECT', dbIndex(db)], `SELECT ${dbIndex(db)}`);
      let copied = 0;
      let cursor = '0';
      do {
        const reply = await from.ok(['SCAN', cursor, 'COUNT', BATCH], 'SCAN');
        if (!Array.isArray(reply) || !Array.isArray(reply[1])) throw new LifeboatError('RECOVERY_FAILED', 'the scratch server answered SCAN with something that is not a list');
        cursor = asText(reply[0] as RespValue) ?? '0';
        copied += await copyKeys(from, to, target, reply[1] as Buffer[]);
      } while (cursor !== '0');
      loaded[db] = copied;
    }
    await from.ok(['SELECT', 0], 'SELECT');
    const held = keyspace(await to.info('keyspace'));
    const show = (r: Record<string, number>) => Object.entries(r).filter(([, n]) => n > 0).map(([d, n]) => `${d}=${n}`).join(' ') || 'none';
    const ok = Object.entries(loaded).every(([db, n]) => (opts.force ? (held[db] ?? 0) >= n : (held[db] ?? 0) === n)) && (opts.force || show(held) === show(loaded));
    return { loaded, check: { name: 'target keys', ok, detail: ok ? `${show(held)} in ${target.display}` : `${target.display} holds ${show(held)} after loading ${show(loaded)}` } };
  } finally {
    to.close();
  }
}

/** DUMP and PEXPIRETIME of `names`, then RESTORE of those still alive, PIPELINE keys per round trip; returns how many were written. */
async function copyKeys(from: RedisConnection, to: RedisConnection, target: RedisTarget, names: readonly Buffer[]): Promise<number> {
  let written = 0;
  for (let i = 0; i < names.length; i += PIPELINE) {
    const group = names.slice(i, i + PIPELINE);
    const read = await Promise.all(group.map(async (key) => ({ key, payload: await from.call(['DUMP', key]), ttl: await from.call(['PEXPIRETIME', key]) })));
    const alive = read.filter((k) => Buffer.isBuffer(k.payload) && typeof k.ttl === 'number' && k.ttl !== -2); // else expired or gone
    // The absolute expiry (PEXPIRETIME, ABSTTL): a relative one would move every expiry later by the copy's own time.
    const replies = await Promise.all(
      alive.map((k) => ((k.ttl as number) < 0 ? to.call(['RESTORE', k.key, 0, k.payload as Buffer, 'REPLACE']) : to.call(['RESTORE', k.key, k.ttl as number, k.payload as Buffer, 'REPLACE', 'ABSTTL']))),
    );
    for (const r of replies) {
      if (r instanceof RespError) throw replyError(target, 'RESTORE', r);
    }
    written += alive.length;
  }
  return written;
}
