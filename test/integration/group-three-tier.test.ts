/**
 * Issue 18's three-tier stack, all real: Redis (hot, a scratch redis-server followed by
 * `lifeboat redis replicate`), SQLite (warm, followed by `lifeboat sqlite replicate`) and
 * a directory (cold, backed up by `lifeboat backup`), and a writer at full speed that
 * keeps cross-tier invariants (test/fixtures/tier-writer.mjs: each operation archives a
 * blob, writes a row naming it, caches the id in Redis). The invariants are the group's
 * `checks:`, run by the same engine `group drill` uses on restored members.
 *
 * As a group: `group backup` of all three back to back while the writer runs, its freeze
 * and thaw holding the writer (the cold directory is copied while frozen); `group drill`
 * (restore at the newest point not after the moment, checks) at 20 random moments: every
 * invariant holds.
 *
 * Member by member: each member restored to the same wall-clock moment with the
 * per-kind restores (sqlite restore --time, redis restore --time, the newest files
 * snapshot not after it), at 20 random moments. They violate the invariants: the test
 * prints and asserts the count. That is why groups exist.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../src/sources/all.js';
import { parseConfig, type LifeboatConfig } from '../../src/config/config.js';
import { runCrossChecks } from '../../src/engine/group/checks.js';
import { groupDrill } from '../../src/engine/group/drill.js';
import { withRestoredMembers } from '../../src/engine/group/restored.js';
import { restore } from '../../src/engine/restore/restorer.js';
import { Repository } from '../../src/repo/repository.js';
import { redisRestore } from '../../src/sources/redis/restore.js';
import { sqliteRestore } from '../../src/sources/sqlite/restore.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { CLI, ROOT, cleanupTmp, initRepo, runCli, tmpdir } from '../helpers.js';
import { RedisServer, stopAllRedis } from '../helpers/redis-server.js';

const ENV = { LIFEBOAT_PASSWORD: 'pw' };
/** How long the writer runs at full speed while backups are taken. */
const WRITE_MS = 4000;
const MOMENTS = 20;

let dir: string;
let repoDir: string;
let config: LifeboatConfig;
let cold: string;
let redis: RedisServer;
const children: ChildProcess[] = [];
/** When the writer ran. */
let window: { from: number; to: number };
let ops = 0;
const points: Array<{ id: string; time: string; hold_ms: number }> = [];

function child(args: string[], name: string): { child: ChildProcess; out: string[]; err: () => string; closed: Promise<number | null> } {
  const c = spawn(process.execPath, args, { env: { ...process.env, ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  const out: string[] = [];
  let err = '';
  createInterface({ input: c.stdout! }).on('line', (l) => out.push(l));
  c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const closed = new Promise<number | null>((resolve) => c.on('close', resolve));
  void name;
  return { child: c, out, err: () => err, closed };
}

async function until(what: string, ok: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A small seeded generator: the moments are printed and can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

beforeAll(async () => {
  dir = tmpdir('lb-tiers-');
  repoDir = path.join(dir, 'repo');
  cold = path.join(dir, 'cold');
  mkdirSync(cold);
  mkdirSync(path.join(dir, 'control'));
  await initRepo(repoDir, ENV.LIFEBOAT_PASSWORD);
  redis = await RedisServer.start({ conf: ['repl-diskless-sync-delay 0'] });
  const sh = (script: string) => JSON.stringify(['/bin/sh', '-c', script]);
  const yaml = [
    'repositories:',
    `  main: { stores: [${repoDir}] }`,
    'sources:',
    `  hot: { kind: redis, url: "${redis.url}" }`,
    '  warm: { kind: sqlite, path: warm.db }',
    // Relative to lifeboat.yaml, as the docs' examples write it.
    '  cold: { kind: files, paths: [cold] }',
    'groups:',
    // Warm first: without the freeze, hot's position would be read after warm's, and ids
    // cached in between would have no row. The freeze is what makes it one moment. The
    // cold directory is copied while frozen (a files member's default), so max_hold has
    // room for a few thousand small files on a loaded machine.
    '  engram:',
    '    members: [warm, hot, cold]',
    // A writer that has stopped for good (control/stopped) holds nothing: the hooks do not wait for it.
    `    freeze: ${sh('touch control/pause; until [ -e control/paused ] || [ -e control/stopped ]; do sleep 0.001; done')}`,
    `    thaw: ${sh('rm -f control/pause; while [ -e control/paused ] && [ ! -e control/stopped ]; do sleep 0.001; done')}`,
    '    max_hold: 20s',
    '    checks:',
    '      - name: cached ids are rows',
    '        every: { member: hot, redis: [SMEMBERS, active] }',
    '        in: { member: warm, sql: "SELECT id FROM memories" }',
    '      - name: cached entries are rows',
    "        every: { member: hot, redis: [KEYS, 'mem:*'], match: '^mem:(\\d+)$' }",
    '        in: { member: warm, sql: "SELECT id FROM memories" }',
    '      - name: rows have their blobs',
    '        every: { member: warm, sql: "SELECT blob FROM memories" }',
    '        in: { member: cold, files: blobs }',
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'lifeboat.yaml'), yaml);
  config = parseConfig(yaml, path.join(dir, 'lifeboat.yaml'));

  // The writer first (it makes the database, in WAL mode), then the replicators follow it.
  const writer = child([path.join(ROOT, 'test/fixtures/tier-writer.mjs'), path.join(dir, 'warm.db'), String(redis.port), cold, path.join(dir, 'control')], 'writer');
  await until('the writer', () => writer.out.includes('ready'));
  const hot = child([CLI, '-r', repoDir, '--json', 'redis', 'replicate', '--url', redis.url, '--name', 'hot', '--interval', '200ms'], 'redis replicate');
  const warm = child([CLI, '-r', repoDir, '--json', 'sqlite', 'replicate', path.join(dir, 'warm.db'), '--name', 'warm', '--interval', '200ms'], 'sqlite replicate');
  // Both have stored their base before the window starts.
  await until('the redis base', () => hot.out.some((l) => l.includes('"archivedThrough"')), 120_000);
  await until('the sqlite base', () => warm.out.length > 0, 120_000);
  window = { from: Date.now(), to: 0 };
  // The cold tier: files backups back to back while the writer runs; beside them, group
  // captures back to back (each holds the writer for a moment through freeze and thaw).
  let backups = 0;
  const files = (async () => {
    while (window.to === 0) {
      const r = await runCli(['-r', repoDir, '-q', 'backup', cold], ENV);
      expect(r.code, r.stderr).toBe(0);
      backups++;
    }
  })();
  const captures = (async () => {
    while (window.to === 0) {
      const r = await runCli(['--config', path.join(dir, 'lifeboat.yaml'), '-r', repoDir, '--json', 'group', 'backup', 'engram'], ENV);
      expect(r.code, r.stderr).toBe(0);
      points.push(JSON.parse(r.stdout) as { id: string; time: string; hold_ms: number });
    }
  })();
  // The writer stops after WRITE_MS (bounding the data), once two files backups and two
  // points are stored while it writes: on a loaded machine one backup can take longer than
  // WRITE_MS, and moments after the writer stopped would see tiers that agree. The loops
  // end with the writer (their last round may still be under way).
  const stopWriter = (async () => {
    await sleep(WRITE_MS);
    await until('two files backups and two group points while the writer writes', () => backups >= 2 && points.length >= 2, 180_000);
    writer.child.kill('SIGTERM');
    expect(await writer.closed, writer.err()).toBe(0);
    window.to = Date.now();
  })();
  await Promise.all([files, captures, stopWriter]);
  ops = (JSON.parse(writer.out.at(-1)!) as { ops: number }).ops;
  for (const r of [hot, warm]) {
    r.child.kill('SIGINT');
    expect(await r.closed, r.err()).toBe(0);
  }
  console.log(`three tiers: ${ops} operations in ${window.to - window.from} ms of writes, ${backups} files backups, ${points.length} group points (holds ${points.map((p) => p.hold_ms.toFixed(1)).join(', ')} ms)`);
}, 240_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await stopAllRedis();
  cleanupTmp();
}, 120_000);

describe('three tiers under load', () => {
  it('restored as a group to 20 random moments, every invariant holds', async () => {
    const repo = await Repository.open(new LocalStore(repoDir), 'pw');
    const first = Date.parse(points[0]!.time);
    const seed = Date.now() % 100000;
    const random = prng(seed);
    const used = new Map<string, number>();
    let rows = 0;
    for (let i = 0; i < MOMENTS; i++) {
      const at = new Date(Math.round(first + random() * Math.max(0, window.to - first)));
      const d = await groupDrill(repo, config, 'engram', { time: at, record: false });
      expect(d.error, `moment ${at.toISOString()}`).toBeUndefined();
      expect(d.ok).toBe(true);
      expect(d.checks.map((c) => c.violations)).toEqual([0, 0, 0]);
      // The newest point not after the moment, restored as one.
      const expected = points.filter((p) => Date.parse(p.time) <= at.getTime()).at(-1)!;
      expect(d.point).toBe(expected.id);
      used.set(d.point!, (used.get(d.point!) ?? 0) + 1);
      rows = Math.max(rows, d.checks[0]!.in.values!);
    }
    console.log(`as a group (seed ${seed}): ${MOMENTS} of ${MOMENTS} moments satisfy every invariant, 0 violations; ${used.size} distinct points of ${points.length} restored, up to ${rows} rows`);
  }, 300_000);

  it('restored member by member to the same moments, the tiers disagree (the count is printed)', async () => {
    const repo = await Repository.open(new LocalStore(repoDir), 'pw');
    // The files backups of their own, not the copies group captures made at their points.
    const snapshots = (await repo.listSnapshots()).filter((s) => s.source.kind === 'files' && (s.consistency as { point?: string } | undefined)?.point === undefined).sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
    const first = Date.parse(snapshots[0]!.time);
    const seed = Date.now() % 100000;
    const random = prng(seed);
    const moments = Array.from({ length: MOMENTS }, () => new Date(Math.round(first + random() * Math.max(0, window.to - first))));
    const group = config.groups.get('engram')!;
    const per: Array<{ at: string; violations: number[]; rows: number | null }> = [];
    // Each files snapshot is restored once, for every moment it serves.
    const colds = new Map<string, string>();
    for (const [i, at] of moments.entries()) {
      const base = path.join(dir, `mbm-${i}`);
      mkdirSync(base);
      await sqliteRestore(repo, { name: 'warm', output: path.join(base, 'warm.db'), time: at });
      await redisRestore(repo, { name: 'hot', output: path.join(base, 'hot'), time: at, scratchParent: base });
      const snap = snapshots.filter((s) => Date.parse(s.time) <= at.getTime()).at(-1)!;
      if (!colds.has(snap.id)) {
        colds.set(snap.id, path.join(dir, `cold-${snap.id.slice(0, 8)}`));
        await restore(repo, snap, { target: colds.get(snap.id)! });
      }
      const members = [
        { source: config.sources.get('hot')!, target: path.join(base, 'hot') },
        { source: config.sources.get('warm')!, target: path.join(base, 'warm.db') },
        { source: config.sources.get('cold')!, target: colds.get(snap.id)!, configFile: path.join(dir, 'lifeboat.yaml') },
      ];
      const results = await withRestoredMembers(members, (opened) => runCrossChecks(group.checks!, opened.readers));
      for (const r of results) expect(r.violations, r.detail).not.toBeNull();
      per.push({ at: at.toISOString(), violations: results.map((r) => r.violations!), rows: results[0]!.in.values });
      rmSync(base, { recursive: true, force: true });
    }
    const total = per.reduce((n, p) => n + p.violations.reduce((a, b) => a + b, 0), 0);
    const broken = per.filter((p) => p.violations.some((v) => v > 0)).length;
    console.log(`member by member (seed ${seed}): ${broken} of ${MOMENTS} moments violate an invariant, ${total} violations in all\n${per.map((p) => `  ${p.at}  ${p.rows} rows  violations ${group.checks!.map((c, i) => `${c.name}: ${p.violations[i]}`).join(', ')}`).join('\n')}`);
    expect(total).toBeGreaterThan(0);
    expect(broken).toBeGreaterThan(MOMENTS / 2);
  }, 300_000);
});
