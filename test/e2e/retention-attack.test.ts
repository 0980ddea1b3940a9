/**
 * A backup host's append-only key must not be able to make the administrator's
 * retention remove real history. The attacker writes snapshots dated 2099 and a burst
 * of fresh ones through the library (as a modified client would); the administrator
 * runs the real CLI: forget keeps every real snapshot its rules keep, "latest" stays
 * real, restores stay exact, a forged --time is refused, and a forget that would keep
 * only the burst is refused until --force.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { cleanupTmp, initRepo, pseudoRandom, runCli, snapshotsJson, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const DAY = 86_400_000;

interface Listed {
  id: string;
  time: string;
  future: boolean;
}

it('forged snapshot times cannot make forget remove real snapshots', async () => {
  const dir = tmpdir();
  const src = path.join(dir, 'src');
  const rp = path.join(dir, 'repo');
  await fs.mkdir(src);
  await initRepo(rp);
  const cli = async (args: string[], env: Record<string, string> = {}) => runCli(['--repo', rp, ...args], env);
  const list = () => snapshotsJson<Listed>(rp);

  // The administrator's real history: five backups, 40 to 1 days old, each different.
  const now = Date.now();
  const contents = new Map<string, Buffer>(); // snapshot time -> the file's bytes then
  for (const daysAgo of [40, 20, 10, 3, 1]) {
    const bytes = Buffer.concat([Buffer.from(`${daysAgo} days ago\n`), pseudoRandom(50_000, daysAgo)]);
    await fs.writeFile(path.join(src, 'data.bin'), bytes);
    const time = new Date(now - daysAgo * DAY).toISOString();
    const r = await cli(['backup', '--time', time, src]);
    expect(r.code, r.stderr).toBe(0);
    contents.set(time, bytes);
  }
  const real = await list();
  expect(real).toHaveLength(5);
  expect(real.every((s) => !s.future)).toBe(true);

  // The attacker holds an append-only key and writes eight snapshots dated 2099.
  expect((await cli(['key', 'add', '--append-only'], { LIFEBOAT_NEW_PASSWORD: 'attacker' })).code).toBe(0);
  const attacker = await Repository.open(new LocalStore(rp), 'attacker');
  expect(attacker.appendOnly).toBe(true);
  const template = await attacker.findSnapshot(real[0]!.id);
  const { id: _id, ...manifest } = template;
  for (let d = 1; d <= 8; d++) await attacker.saveSnapshot({ ...manifest, time: `2099-01-0${d}T00:00:00.000Z` });

  // Listings flag them; "latest" passes over them.
  const flagged = JSON.parse((await cli(['snapshots', '--json'])).stdout) as Listed[];
  expect(flagged.filter((s) => s.future)).toHaveLength(8);
  const text = await cli(['snapshots']);
  expect(text.stdout).toMatch(/2099-01-08 00:00:00Z !/);
  expect(text.stdout).toMatch(/8 dated in the future/);
  const out = path.join(dir, 'latest');
  const latest = await cli(['restore', 'latest', '--target', out]);
  expect(latest.code, latest.stderr).toBe(0);
  expect(latest.stderr).toMatch(/"latest" passes over 8 future-dated snapshot/);
  expect(await fs.readFile(path.join(out, src, 'data.bin'))).toEqual(contents.get(real[4]!.time));

  // The administrator's usual rules would keep every real snapshot...
  const preview = await cli(['forget', '--keep-daily', '7', '--keep-within', '30d', '--dry-run', '--json']);
  expect(preview.code, preview.stderr).toBe(0);
  expect((JSON.parse(preview.stdout) as { removed: string[] }).removed).toEqual([]);
  // ...and tighter ones remove exactly the real snapshots they do not keep.
  const f = await cli(['forget', '--keep-daily', '3', '--keep-within', '15d', '--json']);
  expect(f.code, f.stderr).toBe(0);
  expect((JSON.parse(f.stdout) as { removed: string[] }).removed.sort()).toEqual([real[0]!.id, real[1]!.id].sort());
  const left = await list();
  expect(left.filter((s) => !s.future).map((s) => s.id)).toEqual(real.slice(2).map((s) => s.id));
  expect(left.filter((s) => s.future)).toHaveLength(8);
  for (const s of real.slice(2)) {
    const target = path.join(dir, `restore-${s.id.slice(0, 8)}`);
    const r = await cli(['restore', s.id, '--target', target]);
    expect(r.code, r.stderr).toBe(0);
    expect(await fs.readFile(path.join(target, src, 'data.bin'))).toEqual(contents.get(s.time));
  }

  // A future --time is refused, and nothing is written.
  const forged = await cli(['backup', '--time', '2099-01-01T00:00:00Z', src]);
  expect(forged.code).toBe(2);
  expect(forged.stderr).toMatch(/lifeboat: snapshot time 2099-01-01T00:00:00.000Z is in the future/);
  expect(forged.stderr).toMatch(/hint: /);
  expect(await list()).toHaveLength(left.length);

  // A burst of fresh snapshots from the attacker's key: they carry no tag of a full key,
  // so retention gives them keep slots of their own, and the real history stays.
  for (let i = 0; i < 5; i++) await attacker.saveSnapshot({ ...manifest, time: new Date(Date.now() - i * 1000).toISOString() });
  const flagged2 = JSON.parse((await cli(['snapshots', '--json'])).stdout) as Array<Listed & { trusted?: boolean }>;
  expect(flagged2.filter((s) => s.trusted === false)).toHaveLength(13);
  const kept = await cli(['forget', '--keep-last', '5', '--json']);
  expect(kept.code, kept.stderr).toBe(0);
  const removedNow = (JSON.parse(kept.stdout) as { removed: string[] }).removed;
  for (const s of real.slice(2)) expect(removedNow).not.toContain(s.id);

  // Where trust cannot tell writers apart (the same key made the burst), the wipe guard
  // stands: a burst of fresh snapshots would fill --keep-last 5 and push older history out.
  const admin = await Repository.open(new LocalStore(rp), 'test-password');
  for (let i = 0; i < 5; i++) await admin.saveSnapshot({ ...manifest, time: new Date(Date.now() - i * 1000).toISOString() });
  const before = (await list()).map((s) => s.id);
  const refused = await cli(['forget', '--keep-last', '5']);
  expect(refused.code, refused.stderr).toBe(24);
  expect(refused.stderr).toMatch(/lifeboat: forget would remove all snapshots of host .* older than \S+ \(1\), keeping only the last 7 days; nothing was removed/);
  expect(refused.stderr).toMatch(/hint: .*--force/);
  expect((await list()).map((s) => s.id)).toEqual(before);
  const dry = await cli(['forget', '--keep-last', '5', '--dry-run']);
  expect(dry.code, dry.stderr).toBe(0);
  expect(dry.stderr).toMatch(/without --force, forget refuses this/);
  const forced = await cli(['forget', '--keep-last', '5', '--force', '--json']);
  expect(forced.code, forced.stderr).toBe(0);
  expect((JSON.parse(forced.stdout) as { removed: string[] }).removed.sort()).toEqual(real.slice(2).map((s) => s.id).sort());
}, 180_000);
