/**
 * Group points under forget, prune and copy, through the real CLI: a point goes when a
 * member's data goes (a files member's snapshot forgotten or deleted; no snapshot of a
 * log member left at or before the point), a dry run only says so, and `copy` carries
 * points to a second repository with the snapshots they tie together and their ids
 * rewritten to the copies'.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTmp, initRepo, runCli, snapshotsJson, tmpdir } from '../helpers.js';

interface Point {
  id: string;
  members: Array<{ name: string; kind: string; position: { snapshot?: string } }>;
}
interface Snap {
  id: string;
  source: { kind: string; name?: string };
}

let dir: string;
let repo: string;
let repo2: string;
let cfg: string;
let app: Database.Database;

async function ok(args: string[]): Promise<string> {
  const r = await runCli(args);
  expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}
const backup = async (group: string) => JSON.parse(await ok(['--config', cfg, 'group', 'backup', group, '--json'])) as Point;
const points = async (group: string, r = repo) => (JSON.parse(await ok(['--config', cfg, '-r', r, 'group', 'points', group, '--json'])) as { points: Point[] }).points;
const snapshots = async (r = repo) => snapshotsJson<Snap>(r);
const snapOf = (p: Point, member: string) => p.members.find((m) => m.name === member)!.position.snapshot!;

/** meta.db's own archiver (`sqlite replicate`), as a user runs it: a point is stored once its log holds the point's position. */
let replicator: ChildProcess | undefined;
let replicatorErr = '';
function startReplicator(): void {
  replicatorErr = '';
  replicator = spawn(process.execPath, [CLI, 'sqlite', 'replicate', path.join(dir, 'meta.db'), '--name', 'meta', '--interval', '200ms', '--verify-interval', 'off', '-r', repo], { env: { ...process.env, LIFEBOAT_PASSWORD: 'test-password' }, stdio: ['ignore', 'ignore', 'pipe'] });
  replicator.stderr!.on('data', (d: Buffer) => (replicatorErr += d.toString()));
}
/**
 * Starts the replicator and waits until it stored the first snapshot of its generation:
 * a point before it could not be proven. The snapshots already there are listed before
 * it starts, or a quick first snapshot would count as one of them.
 */
async function replicatorReady(): Promise<void> {
  const before = new Set((await snapshots()).filter((s) => s.source.kind === 'sqlite').map((s) => s.id));
  startReplicator();
  for (const until = Date.now() + 120_000; ; ) {
    if ((await snapshots()).some((s) => s.source.kind === 'sqlite' && !before.has(s.id))) return;
    const r = replicator!;
    if (r.exitCode !== null || r.signalCode !== null) throw new Error(`sqlite replicate exited (${r.exitCode ?? r.signalCode}) before storing a snapshot:\n${replicatorErr}`);
    if (Date.now() > until) throw new Error(`sqlite replicate stored no snapshot in 120 s:\n${replicatorErr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}
async function stopReplicator(): Promise<void> {
  const r = replicator;
  replicator = undefined;
  if (!r) return;
  r.kill('SIGTERM');
  if (r.exitCode === null && r.signalCode === null) await new Promise((res) => r.once('close', res));
}

beforeAll(async () => {
  dir = tmpdir('lb-group-keep-');
  for (const d of ['docs', 'more']) {
    mkdirSync(path.join(dir, d));
    writeFileSync(path.join(dir, d, 'f'), `${d}\n`);
  }
  app = new Database(path.join(dir, 'meta.db'));
  app.pragma('journal_mode = WAL');
  app.exec('CREATE TABLE t (x)');
  repo = path.join(dir, 'repo');
  repo2 = path.join(dir, 'repo2');
  await initRepo(repo);
  await initRepo(repo2);
  await replicatorReady();
  cfg = path.join(dir, 'lifeboat.yaml');
  writeFileSync(
    cfg,
    [
      'repositories:',
      `  main: { stores: [${repo}] }`,
      'sources:',
      '  docs: { kind: files, paths: [docs] }',
      '  more: { kind: files, paths: [more] }',
      '  meta: { kind: sqlite, path: meta.db }',
      'groups:',
      '  mixed: { members: [docs, meta], max_hold: 30s }',
      '  pair: { members: [docs, more], max_hold: 30s }',
      '',
    ].join('\n'),
  );
}, 180_000);

afterAll(async () => {
  await stopReplicator();
  app?.close();
  cleanupTmp();
});

describe('retention of points', () => {
  let p1: Point;
  let p2: Point;
  let p3: Point;
  let bases: string[];

  it('drops a point once the snapshot of its files member is forgotten (a dry run only says so)', async () => {
    p1 = await backup('mixed');
    p2 = await backup('mixed');
    p3 = await backup('mixed');
    expect((await points('mixed')).map((p) => p.id)).toEqual([p3.id, p2.id, p1.id]);

    const dry = JSON.parse(await ok(['-r', repo, '--json', 'forget', '--dry-run', snapOf(p1, 'docs')])) as { points: Array<{ group: string; removed: Array<{ id: string; reason: string }>; kept: number }> };
    expect(dry.points).toEqual([{ group: 'mixed', removed: [{ id: p1.id, reason: `the snapshot of docs (${snapOf(p1, 'docs').slice(0, 8)}) is gone` }], kept: 2 }]);
    expect((await points('mixed')).map((p) => p.id)).toEqual([p3.id, p2.id, p1.id]);

    const text = await ok(['-r', repo, 'forget', snapOf(p1, 'docs')]);
    expect(text).toMatch(/group mixed: dropped 1 point\(s\) whose data is gone \(the snapshot of docs \([0-9a-f]{8}\) is gone\); 2 kept/);
    expect((await points('mixed')).map((p) => p.id)).toEqual([p3.id, p2.id]);
  }, 120_000);

  it('drops every point of a log member once no snapshot of it remains at or before the point', async () => {
    // The replicator stops (it would start a new generation, with a new snapshot); then every snapshot of meta goes.
    await stopReplicator();
    bases = (await snapshots()).filter((s) => s.source.kind === 'sqlite').map((s) => s.id);
    expect(bases.length).toBeGreaterThan(0);
    const r = JSON.parse(await ok(['-r', repo, '--json', 'forget', ...bases])) as { points: Array<{ removed: Array<{ reason: string }> }> };
    expect(r.points[0]!.removed.map((x) => x.reason)).toEqual(['no snapshot of meta remains at or before the point', 'no snapshot of meta remains at or before the point']);
    expect(await points('mixed')).toEqual([]);
  }, 120_000);

  it('prune drops a point whose snapshot disappeared some other way, and leaves the others', async () => {
    const a = await backup('pair');
    const b = await backup('pair');
    rmSync(path.join(repo, 'snapshots', snapOf(a, 'more')));
    const out = await ok(['-r', repo, 'prune']);
    expect(out).toMatch(/group pair: dropped 1 point\(s\) whose data is gone \(the snapshot of more \([0-9a-f]{8}\) is gone\); 1 kept/);
    expect((await points('pair')).map((p) => p.id)).toEqual([b.id]);
  }, 120_000);
});

describe('copy carries points', () => {
  it('carries a point with the snapshots it ties together when one of them is copied, with their ids rewritten', async () => {
    const p = await backup('pair');
    const out = await ok(['copy', '--from-repo', repo, '--to-repo', repo2, snapOf(p, 'docs')]);
    expect(out).toMatch(/2 copied, 0 already there, 0 log files, 1 group point\(s\)/);
    const copies = await snapshots(repo2);
    const [copied] = await points('pair', repo2);
    expect(copied!.id).toBe(p.id);
    for (const m of ['docs', 'more']) {
      // The point names the destination's copy (another repository's key gives it another id).
      const c = copies.find((s) => s.id === snapOf(copied!, m));
      expect(c?.source, m).toEqual({ kind: 'files', name: m });
      expect(snapOf(copied!, m)).not.toBe(snapOf(p, m));
    }
    // Copying again stores nothing new.
    expect(await ok(['copy', '--from-repo', repo, '--to-repo', repo2, snapOf(p, 'docs')])).toMatch(/0 copied, 2 already there, 0 log files, 0 group point\(s\)/);
  }, 120_000);

  it('carries a point with a log member only with that member\'s snapshots and log', async () => {
    await replicatorReady();
    const p = await backup('mixed');
    await ok(['copy', '--from-repo', repo, '--to-repo', repo2, snapOf(p, 'docs')]);
    expect(await points('mixed', repo2)).toEqual([]);
    await ok(['copy', '--from-repo', repo, '--to-repo', repo2]);
    expect((await points('mixed', repo2)).map((x) => x.id)).toEqual([p.id]);
  }, 120_000);
});
