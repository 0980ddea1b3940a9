/**
 * Undo to the transaction for Redis, through the real CLI against a scratch
 * redis-server replicated by `lifeboat redis replicate`: an application writes, then
 * deletes twelve keys with one DEL (the accident) and goes on writing at once, so the DEL
 * and its neighbours arrive in the same reads. `redis history --around` names the DEL and
 * its keys (bounded, never a value); `restore --before-txn N` gives back exactly the
 * dataset as it was just before it, key by key; `--txn N` includes it and nothing after;
 * a MULTI…EXEC block is one transaction; every write after the base is numbered, one
 * number each, without gaps or repeats, across a `kill -9` of the replicator and its
 * restart; compaction changes no number; bad numbers are one-line errors with a hint.
 */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ERROR_TABLE } from '../../src/errors.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { compactGeneration } from '../../src/sources/redis/compact.js';
import { logSource } from '../../src/sources/redis/names.js';
import { decodeSegment } from '../../src/sources/redis/segment.js';
import { cleanupTmp, expectError, initRepo, runCli, tmpdir } from '../helpers.js';
import { RedisReplicator } from '../helpers/redis-replicator.js';
import { RedisServer, datasetOf, datasetOfRdb, stopAllRedis } from '../helpers/redis-server.js';

const ENV = { LIFEBOAT_PASSWORD: 'redis-undo' };
const NOT_FOUND = ERROR_TABLE.NOT_FOUND.exit;
const USAGE = ERROR_TABLE.USAGE.exit;
const iso = (ms: number) => new Date(ms).toISOString();

afterAll(async () => {
  await stopAllRedis();
  cleanupTmp();
});

interface HistoryJson {
  name: string;
  generation: string;
  time_source: string;
  transactions: Array<{
    seq: number;
    time: string;
    offset: number;
    before_offset: number;
    db: number | null;
    block: boolean;
    command_count: number;
    commands: Array<{ name: string; keys: string[]; key_count: number | null }>;
  }>;
}

async function cli(args: string[]): Promise<string> {
  const r = await runCli(args, ENV, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`lifeboat ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function history(repo: string, around: number, limit: number): Promise<HistoryJson> {
  return JSON.parse(await cli(['-r', repo, '--json', 'redis', 'history', 'app', '--around', iso(around), '--limit', String(limit)])) as HistoryJson;
}

describe('redis history and restore --before-txn', () => {
  it('names the DEL and its keys, and undoes exactly that transaction and what followed', async () => {
    const server = await RedisServer.start({ conf: ['repl-diskless-sync-delay 0'] });
    const dir = tmpdir('lb-redis-undo-');
    const repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    const c = await server.client();
    let writes = 0;
    const set = async (key: string, i: number) => {
      await c.ok(['SET', key, `secret-value-${i}`]);
      writes++;
    };
    let rep = RedisReplicator.start(repo, server.url, 'app', ['--interval', '200ms'], ENV);
    try {
      const gen = await rep.until((e) => e.kind === 'generation', 'a generation');
      for (let i = 0; i < 60; i++) await set(`k:${i}`, i);
      // A block: one transaction, with a database switch inside it.
      await c.ok(['MULTI']);
      await c.ok(['SET', 'm:a', 'secret-value-block']);
      await c.ok(['SELECT', 1]);
      await c.ok(['INCRBY', 'm:b', 5]);
      await c.ok(['SELECT', 0]);
      await c.ok(['EXEC']);
      writes++;
      // The replicator has received what came before the accident when it happens: a
      // command's time is when it arrived, so one that falls behind (CI saw it) stamps
      // the writes before the DEL after the moment given to --around, and with more than
      // three quarters of the listing taken by them, the DEL fell outside it (docs/redis.md).
      await rep.archived(Date.now());
      const before = await datasetOf(server);
      const accidentAt = Date.now();
      const deleted = Array.from({ length: 12 }, (_, i) => `k:${i * 3}`);
      await c.ok(['DEL', ...deleted]);
      writes++;
      const accident = await datasetOf(server);
      // The application goes on at once: these land in the same reads as the DEL.
      for (let i = 100; i < 130; i++) await set(`k:${i}`, i);
      await rep.archived(Date.now());

      const h = await history(repo, accidentAt, 40);
      expect(h.generation).toBe(gen.generation);
      expect(h.time_source).toMatch(/replicator/);
      expect(h.transactions).toHaveLength(40);
      const seqs = h.transactions.map((t) => t.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i));
      const dels = h.transactions.filter((t) => t.commands.some((x) => x.name === 'DEL'));
      expect(dels).toHaveLength(1);
      const del = dels[0]!;
      expect(del.commands).toEqual([{ name: 'DEL', keys: deleted.slice(0, 8), key_count: 12 }]);
      expect(del.block).toBe(false);
      const block = h.transactions.find((t) => t.block)!;
      expect(block.seq).toBe(del.seq - 1);
      expect(block.commands).toEqual([
        { name: 'SET', keys: ['m:a'], key_count: 1 },
        { name: 'INCRBY', keys: ['m:b'], key_count: 1 },
      ]);
      expect(block.db).toBe(0);
      // Every write since the base is numbered, one number each: the last is the count.
      expect(Math.max(...seqs)).toBeLessThanOrEqual(writes);
      const human = await cli(['-r', repo, 'redis', 'history', 'app', '--around', iso(accidentAt), '--limit', '40']);
      expect(human).toMatch(new RegExp(`^\\s+${del.seq}\\s+\\S+\\s+0\\s+DEL ${deleted.slice(0, 8).join(' ')} \\(\\+4 more keys\\)$`, 'm'));
      expect(human).toMatch(new RegExp(`^\\s+${block.seq}\\s+\\S+\\s+0\\s+MULTI: SET m:a; INCRBY m:b$`, 'm'));
      expect(human).toMatch(/--before-txn N/);
      // Never a value, in either form.
      expect(human + JSON.stringify(h)).not.toMatch(/secret-value/);

      // --before-txn: exactly the dataset just before the DEL, key by key.
      const beforeDir = path.join(dir, 'before');
      const out = JSON.parse(await cli(['-r', repo, '--json', 'redis', 'restore', 'app', '--before-txn', String(del.seq), '--output', beforeDir])) as Record<string, unknown>;
      expect(out).toMatchObject({ txn: del.seq, txn_included: false, generation: gen.generation, offset: del.before_offset });
      const restoredBefore = await datasetOfRdb(path.join(beforeDir, 'dump.rdb'));
      expect(Object.keys(restoredBefore).sort()).toEqual(Object.keys(before).sort());
      expect(restoredBefore).toEqual(before);
      expect(Object.keys(before)).toEqual(expect.arrayContaining(deleted.map((k) => `db0:${k}`)));
      // --txn: the DEL included, nothing after it.
      const incDir = path.join(dir, 'including');
      await cli(['-r', repo, 'redis', 'restore', 'app', '--txn', String(del.seq), '--output', incDir]);
      expect(await datasetOfRdb(path.join(incDir, 'dump.rdb'))).toEqual(accident);

      // The guided recovery takes the same number.
      const recovered = path.join(dir, 'recovered');
      const rec = await runCli(['-r', repo, '--json', 'recover', 'app', '--before-txn', String(del.seq), '--generation', String(gen.generation), '--target', recovered, '--yes'], ENV, { timeoutMs: 120_000 });
      expect(rec.code, rec.stderr).toBe(0);
      expect(rec.stdout).toMatch(new RegExp(`"command":\\[[^\\]]*"--before-txn","${del.seq}","--generation","${gen.generation}"`));
      expect(await datasetOfRdb(path.join(recovered, 'dump.rdb'))).toEqual(before);

      // Bad numbers: one line, a hint, stable exit codes.
      const newest = h.transactions.at(-1)!.seq;
      const beyond = await runCli(['-r', repo, 'redis', 'restore', 'app', '--before-txn', '999999', '--output', path.join(dir, 'x')], ENV);
      expectError(beyond, NOT_FOUND, /no transaction 999999 in generation [0-9a-f]{20} \(stored: 1 to \d+\)/);
      expect(beyond.stderr).toMatch(/hint: .*redis history/);
      for (const bad of [['--txn', '0'], ['--txn=-3'], ['--before-txn', 'x1'], ['--txn', '1.5']]) {
        expectError(await runCli(['-r', repo, 'redis', 'restore', 'app', ...bad, '--output', path.join(dir, 'y')], ENV), USAGE, /takes a transaction number/);
      }
      expectError(await runCli(['-r', repo, 'redis', 'restore', 'app', '--txn', '3', '--time', iso(accidentAt), '--output', path.join(dir, 'z')], ENV), USAGE, /give one of/);
      expectError(await runCli(['-r', repo, 'redis', 'restore', 'app', '--generation', String(gen.generation), '--output', path.join(dir, 'z')], ENV), USAGE, /--generation goes with/);
      expectError(await runCli(['-r', repo, 'redis', 'restore', 'app', '--txn', '2', '--generation', 'f'.repeat(20), '--output', path.join(dir, 'z')], ENV), NOT_FOUND, /has no generation f{20}/);
      expectError(await runCli(['-r', repo, 'redis', 'history', 'app', '--around', iso(accidentAt), '--limit', '0'], ENV), USAGE, /--limit must be/);
      expectError(await runCli(['-r', repo, 'redis', 'history', 'nope', '--around', iso(accidentAt)], ENV), NOT_FOUND, /no replicated history of Redis "nope"/);

      // kill -9 mid-writes and a restart: the generation resumes and the numbers carry on.
      for (let i = 200; i < 220; i++) await set(`k:${i}`, i);
      await rep.kill9();
      for (let i = 220; i < 240; i++) await set(`k:${i}`, i);
      rep = RedisReplicator.start(repo, server.url, 'app', ['--interval', '200ms'], ENV);
      const resumed = await rep.until((e) => e.kind === 'generation', 'a generation after the restart');
      expect(resumed).toMatchObject({ reason: 'resumed', generation: gen.generation });
      for (let i = 240; i < 260; i++) await set(`k:${i}`, i);
      const lastAt = Date.now();
      await rep.archived(Date.now());
      await rep.stop();
      const all = await history(repo, lastAt, 500);
      const nums = all.transactions.map((t) => t.seq);
      // Every write after the base snapshot, exactly once: 1 … writes.
      expect(nums).toEqual(Array.from({ length: writes }, (_, i) => i + 1));
      expect(all.transactions.find((t) => t.seq === del.seq)?.offset).toBe(del.offset);
      expect(all.transactions.at(-1)?.commands).toEqual([{ name: 'SET', keys: ['k:259'], key_count: 1 }]);
      expect(newest).toBeLessThan(writes);

      // Compaction merges the segments and changes no number or offset.
      const store = new LocalStore(repo);
      const r = await Repository.open(store, ENV.LIFEBOAT_PASSWORD);
      const segments = async () => (await r.listLogs(logSource('app'))).filter((l) => l.timeline === gen.generation).length;
      const before_ = await segments();
      const compacted = await compactGeneration(r, logSource('app'), String(gen.generation), Date.now() + 3 * 3_600_000);
      expect(compacted.merged).toBeGreaterThan(1);
      expect(await segments()).toBeLessThan(before_);
      // The merged objects carry the numbers themselves (retention may remove what a count would start from).
      let next = 1;
      for (const l of (await r.listLogs(logSource('app'))).filter((x) => x.timeline === gen.generation).sort((x, y) => x.file.localeCompare(y.file))) {
        const seg = decodeSegment((await r.getLog(logSource('app'), String(gen.generation), l.file))!, l.file);
        expect(seg.meta.firstTxn, l.file).toBe(next);
        next += seg.meta.txns!;
      }
      expect(next - 1).toBe(writes);
      const again = await history(repo, lastAt, 500);
      expect(again.transactions).toEqual(all.transactions);
      const afterCompaction = path.join(dir, 'after-compaction');
      await cli(['-r', repo, 'redis', 'restore', 'app', '--before-txn', String(del.seq), '--output', afterCompaction]);
      expect(await datasetOfRdb(path.join(afterCompaction, 'dump.rdb'))).toEqual(before);
    } finally {
      c.close();
      await rep.stop().catch(() => rep.kill9());
    }
  }, 240_000);
});
