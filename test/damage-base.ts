/**
 * The repository the damage tests (damage.test.ts, damage-check.test.ts) damage copies
 * of, and what they do with it: flip a byte, list, restore, run the CLI under
 * /usr/bin/time. Built once per file, copied per test.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { Repository } from '../src/repo/repository.js';
import { LocalStore } from '../src/storage/local/local-store.js';
import { CLI, cliExpecting, initRepo, makeFixture, snapshotOf, snapshotsJson, tmpdir, type CliResult } from './helpers.js';

export const ENV = { LIFEBOAT_PASSWORD: 'pw' };
export const cli = (args: string[], code = 0) => cliExpecting(args, code, ENV);

export interface Base {
  repo: string;
  src: string;
  /** Snapshot ids, oldest first: A, B (verified by a drill), C. */
  ids: string[];
  /** One object of each kind, by kind. */
  objects: Record<string, string>;
}

/** Every key under a folder of the repository, sorted. */
export async function keysUnder(repo: string, folder: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(repo, rel), { withFileTypes: true })) {
      const key = path.posix.join(rel, e.name);
      if (e.isDirectory()) await walk(key);
      else out.push(key);
    }
  };
  await walk(folder);
  return out.sort();
}

export async function flipByte(file: string): Promise<void> {
  const data = await fs.readFile(file);
  const at = Math.floor(data.length / 2);
  data[at] = (data[at] as number) ^ 0x01;
  await fs.writeFile(file, data);
}

/** A copy of the base repository to damage. */
export async function copyOfBase(base: Base): Promise<string> {
  const repo = path.join(tmpdir('lb-damage-'), 'repo');
  await fs.cp(base.repo, repo, { recursive: true });
  return repo;
}

export async function listed(repo: string): Promise<{ ids: string[]; stderr: string }> {
  const r = await cli(['-r', repo, '--json', 'snapshots']);
  return { ids: (JSON.parse(r.stdout) as Array<{ id: string }>).map((s) => s.id), stderr: r.stderr };
}

export async function restoresExactly(base: Base, repo: string, id: string): Promise<CliResult> {
  const target = path.join(tmpdir('lb-damage-out-'), 'out');
  const r = await cli(['-r', repo, 'restore', id, '-t', target]);
  expect(await snapshotOf(path.join(target, base.src))).toEqual(await snapshotOf(base.src));
  return r;
}

/** Runs the CLI under /usr/bin/time; returns its result and peak resident memory in bytes. */
export function runMeasured(args: string[]): Promise<CliResult & { maxRss: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', 'maxrss-kib=%M', process.execPath, CLI, ...args], { env: { ...process.env, ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /maxrss-kib=(\d+)/.exec(stderr);
      resolve({ code: code ?? -1, stdout, stderr, maxRss: m ? Number(m[1]) * 1024 : Infinity });
    });
  });
}

/**
 * The repository every test damages a copy of: three snapshots (the drill verified
 * the second), two key slots, a verification record, a retiring list and a log file.
 */
export async function buildBase(): Promise<Base> {
  const dir = tmpdir('lb-damage-base-');
  const repo = path.join(dir, 'repo');
  const src = path.join(dir, 'src');
  await fs.mkdir(src);
  await makeFixture(src);
  await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
  await cli(['-r', repo, 'backup', src]);
  await fs.writeFile(path.join(src, 'second.txt'), 'second\n');
  await cli(['-r', repo, 'backup', src]);
  // The drill verifies B, the latest at the time.
  const drill = JSON.parse((await cli(['-r', repo, '--json', 'drill', '--source', src])).stdout) as { ok: boolean };
  expect(drill.ok).toBe(true);
  await fs.writeFile(path.join(src, 'third.txt'), 'third\n');
  await cli(['-r', repo, 'backup', src]);
  const ids = (await snapshotsJson(repo, ENV.LIFEBOAT_PASSWORD)).map((s) => s.id);
  expect(ids).toHaveLength(3);
  // A second key slot (the first opens the repository), state/verified, a retiring list, a log file.
  const pwFile = path.join(dir, 'second-password');
  await fs.writeFile(pwFile, 'second\n');
  await cli(['-r', repo, 'key', 'add', '--new-password-file', pwFile]);
  await cli(['-r', repo, 'check', '--read-data']);
  const r = await Repository.open(new LocalStore(repo), 'pw');
  await r.saveRetiring({ time: new Date().toISOString(), hostname: 'test', packs: [] });
  await r.putLog('sqlite.app', '0000000000000000abcd', '0000000000000000-0000000000000010-000000000000', Buffer.alloc(50_000, 3));
  const slots = await keysUnder(repo, 'keys');
  const opening = r.slotId;
  const packs = await keysUnder(repo, 'data');
  const sizes = await Promise.all(packs.map(async (k) => (await fs.stat(path.join(repo, k))).size));
  const objects: Record<string, string> = {
    config: 'config',
    'config copy': 'state/config',
    'key slot': slots.find((k) => k !== `keys/${opening}`) as string,
    snapshot: `snapshots/${ids[0]}`,
    index: (await keysUnder(repo, 'index'))[0] as string,
    pack: packs[sizes.indexOf(Math.max(...sizes))] as string,
    'retiring list': (await keysUnder(repo, 'prune'))[0] as string,
    'drill record': (await keysUnder(repo, 'drills'))[0] as string,
    'verification record': 'state/verified',
    'log file': (await keysUnder(repo, 'logs'))[0] as string,
  };
  for (const [kind, key] of Object.entries(objects)) expect(key, kind).toBeTruthy();
  return { repo, src, ids, objects };
}
