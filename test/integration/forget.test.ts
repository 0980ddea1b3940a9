/**
 * forget keeps exactly the snapshots restic's rules keep: the same snapshot times go
 * into a real restic repository and a Lifeboat one, and both tools' decisions are
 * compared rule set by rule set.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/engine/backup/archiver.js';
import { forget } from '../../src/engine/retention/forget.js';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { mapLimit } from '../../src/util/limit.js';
import { parseDuration } from '../../src/util/duration.js';
import { cleanupTmp, initRepo, runCli, snapshotsJson, tmpdir } from '../helpers.js';
import { cheapResticKey } from '../restic.js';

const run = promisify(execFile);

afterAll(cleanupTmp);

/** 60 days ending 2026-03-20: one to three snapshots a day at varied hours, some tagged. */
function schedule(): Array<{ time: string; tags: string[] }> {
  const out: Array<{ time: string; tags: string[] }> = [];
  const end = Date.UTC(2026, 2, 20);
  for (let day = 59; day >= 0; day--) {
    const base = end - day * 86_400_000;
    const n = 1 + ((day * 7) % 3);
    for (let i = 0; i < n; i++) {
      const t = new Date(base + (3 + i * 7 + (day % 5)) * 3_600_000 + i * 60_000);
      out.push({ time: t.toISOString().replace(/\.\d{3}Z$/, 'Z'), tags: day % 11 === 0 && i === 0 ? ['important'] : [] });
    }
  }
  return out;
}

const RULES: string[][] = [
  ['--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '12'],
  ['--keep-last', '3', '--keep-hourly', '5'],
  ['--keep-within', '10d', '--keep-tag', 'important'],
  ['--keep-yearly', '1', '--keep-weekly', '2', '--keep-last', '1'],
  ['--keep-within', '1mo2d5h'],
];

let resticRepo: string;
let src: string;
let repo: Repository;
const env = { ...process.env, RESTIC_PASSWORD: 'x', TZ: 'UTC', RESTIC_CACHE_DIR: '' };

beforeAll(async () => {
  const dir = tmpdir();
  src = path.join(dir, 'src');
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, 'f'), 'same data every day');
  resticRepo = path.join(dir, 'restic');
  env.RESTIC_CACHE_DIR = path.join(dir, 'restic-cache');
  execFileSync('restic', ['-r', resticRepo, 'init'], { env, stdio: 'ignore' });
  // ~120 restic commands follow: each would derive the key at init's calibrated ~0.5 CPU-s.
  cheapResticKey(resticRepo, env.RESTIC_PASSWORD);
  repo = await Repository.init(new MemoryStore(), 'pw');
  // restic backups take shared locks, so they can run side by side.
  const pending = mapLimit(schedule(), 4, (s) =>
    run('restic', ['-r', resticRepo, 'backup', '-q', '--host', 'h', '--time', s.time.replace('T', ' ').replace('Z', ''), ...s.tags.flatMap((t) => ['--tag', t]), src], { env }),
  );
  for (const s of schedule()) await backup(repo, { paths: [src], hostname: 'h', time: new Date(s.time), tags: s.tags, threads: 1 });
  await pending;
}, 180_000);

/** restic spells months `m`; Lifeboat refuses that as ambiguous and writes `mo`. */
const resticSpelling = (rules: string[]) => rules.map((r) => r.replace(/(\d+)mo/, '$1m'));

function resticKeeps(rules: string[]): string[] {
  const out = execFileSync('restic', ['-r', resticRepo, 'forget', '--dry-run', '--json', ...resticSpelling(rules)], { env }).toString();
  const groups = JSON.parse(out.slice(out.indexOf('['))) as Array<{ keep: Array<{ time: string }> }>;
  return groups.flatMap((g) => g.keep.map((s) => new Date(s.time).toISOString())).sort();
}

describe('forget with restic semantics', () => {
  it.each(RULES.map((r) => [r.join(' '), r]))('%s keeps exactly what restic keeps', async (_name, rules) => {
    const want = resticKeeps(rules as string[]);
    // restic measures --keep-within from the newest snapshot, Lifeboat from now: they agree when now is the newest.
    const now = Math.max(...schedule().map((s) => Date.parse(s.time)));
    const r = await forget(repo, { policy: policyFromArgs(rules as string[]), dryRun: true, now });
    const got = r.groups.flatMap((g) => g.keep.map((s) => new Date(s.time).toISOString())).sort();
    expect(want.length).toBeGreaterThan(0);
    expect(got).toEqual(want);
  });

  it('removes what the rules do not keep, through the CLI, and keeps --min-keep', async () => {
    const dir = tmpdir();
    const rp = path.join(dir, 'repo');
    await initRepo(rp);
    for (const day of [1, 2, 3, 4]) {
      expect((await runCli(['backup', '--repo', rp, '--time', `2026-01-0${day}T12:00:00Z`, src])).code).toBe(0);
    }
    let r = await runCli(['forget', '--repo', rp, '--keep-last', '1', '--min-keep', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { removed: string[] }).removed).toHaveLength(2);
    expect((await snapshotsJson(rp)).map((s) => s.time.slice(0, 10))).toEqual(['2026-01-03', '2026-01-04']);
    r = await runCli(['forget', '--repo', rp]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nothing would be removed/);
    r = await runCli(['forget', '--repo', rp, '--keep-within', '3x']);
    expect(r.code).toBe(2);
  });
});

function policyFromArgs(args: string[]) {
  const p: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i += 2) {
    const [flag, v] = [args[i]!, args[i + 1]!];
    const key = flag.replace('--keep-', '');
    if (key === 'within') p.within = parseDuration(v);
    else if (key === 'tag') p.tags = [v.split(',')];
    else p[key] = Number(v);
  }
  return p;
}
