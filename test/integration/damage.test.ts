/**
 * Damage to one object stays local, through the real CLI: a damaged, foreign or
 * bomb object in snapshots/, prune/, drills/ or state/ is skipped with a warning
 * naming it while the other snapshots list, restore exactly and backups go on; a
 * damaged drill record protects the snapshot it may have verified; a lost config is
 * refused by init and restored by `repair config`; and `check --read-data` finds one
 * flipped byte in every kind of object and names it.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODEC } from '../../src/codec/compression.js';
import { encrypt, sha256 } from '../../src/codec/crypto.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { toHex } from '../../src/util/bytes.js';
import { BOMB_SIZE, zstdBomb } from '../bombs.js';
import { CLI, cleanupTmp, cliExpecting, expectError, makeFixture, runCli, snapshotOf, tmpdir, type CliResult } from '../helpers.js';

afterAll(cleanupTmp);

const ENV = { LIFEBOAT_PASSWORD: 'pw' };
const cli = (args: string[], code = 0) => cliExpecting(args, code, ENV);

interface Base {
  repo: string;
  src: string;
  /** Snapshot ids, oldest first: A, B (verified by a drill), C. */
  ids: string[];
  /** One object of each kind, by kind. */
  objects: Record<string, string>;
}

let base: Base;

/** Every key under a folder of the repository, sorted. */
async function keysUnder(repo: string, folder: string): Promise<string[]> {
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

async function flipByte(file: string): Promise<void> {
  const data = await fs.readFile(file);
  const at = Math.floor(data.length / 2);
  data[at] = (data[at] as number) ^ 0x01;
  await fs.writeFile(file, data);
}

/** A copy of the base repository to damage. */
async function copyOfBase(): Promise<string> {
  const repo = path.join(tmpdir('lb-damage-'), 'repo');
  await fs.cp(base.repo, repo, { recursive: true });
  return repo;
}

async function listed(repo: string): Promise<{ ids: string[]; stderr: string }> {
  const r = await cli(['-r', repo, '--json', 'snapshots']);
  return { ids: (JSON.parse(r.stdout) as Array<{ id: string }>).map((s) => s.id), stderr: r.stderr };
}

async function restoresExactly(repo: string, id: string): Promise<CliResult> {
  const target = path.join(tmpdir('lb-damage-out-'), 'out');
  const r = await cli(['-r', repo, 'restore', id, '-t', target]);
  expect(await snapshotOf(path.join(target, base.src))).toEqual(await snapshotOf(base.src));
  return r;
}

/** Runs the CLI under /usr/bin/time; returns its result and peak resident memory in bytes. */
function runMeasured(args: string[]): Promise<CliResult & { maxRss: number }> {
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

beforeAll(async () => {
  const dir = tmpdir('lb-damage-base-');
  const repo = path.join(dir, 'repo');
  const src = path.join(dir, 'src');
  await fs.mkdir(src);
  await makeFixture(src);
  await cli(['init', '-r', repo]);
  await cli(['-r', repo, 'backup', src]);
  await fs.writeFile(path.join(src, 'second.txt'), 'second\n');
  await cli(['-r', repo, 'backup', src]);
  // The drill verifies B, the latest at the time.
  const drill = JSON.parse((await cli(['-r', repo, '--json', 'drill', '--source', src])).stdout) as { ok: boolean };
  expect(drill.ok).toBe(true);
  await fs.writeFile(path.join(src, 'third.txt'), 'third\n');
  await cli(['-r', repo, 'backup', src]);
  const ids = (JSON.parse((await cli(['-r', repo, '--json', 'snapshots'])).stdout) as Array<{ id: string }>).map((s) => s.id);
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
  base = { repo, src, ids, objects };
});

describe('one damaged record stays local', () => {
  it.each(['snapshot', 'retiring list', 'drill record', 'verification record'])(
    'a damaged %s: the other snapshots list and restore exactly, backup works, check names it',
    async (kind) => {
      const repo = await copyOfBase();
      const key = base.objects[kind] as string;
      await flipByte(path.join(repo, key));
      const expected = kind === 'snapshot' ? base.ids.slice(1) : base.ids;
      const l = await listed(repo);
      expect(l.ids).toEqual(expected);
      if (kind === 'snapshot') expect(l.stderr).toContain(`warning: ${key} skipped`);
      const restored = await restoresExactly(repo, base.ids[2] as string);
      if (kind === 'retiring list') expect(restored.stderr).toContain(`warning: ${key} skipped`);
      await cli(['-r', repo, 'backup', base.src]);
      expect((await listed(repo)).ids).toHaveLength(expected.length + 1);
      const c = await runCli(['-r', repo, 'check'], ENV);
      expect(c.code, c.stdout + c.stderr).toBe(13);
      expect(c.stdout).toContain(kind === 'snapshot' ? `error: snapshot ${(base.ids[0] as string).slice(0, 8)}` : `error: ${key}`);
    },
  );

  it('a damaged snapshot can be forgotten by its full id, and then check passes', async () => {
    const repo = await copyOfBase();
    const id = base.ids[0] as string;
    await flipByte(path.join(repo, 'snapshots', id));
    await cli(['-r', repo, 'forget', id]);
    const l = await listed(repo);
    expect(l.ids).toEqual(base.ids.slice(1));
    expect(l.stderr).not.toContain('warning');
    await cli(['-r', repo, 'check']);
  });

  it('a junk object in snapshots/ is skipped and can be forgotten by its object name', async () => {
    const repo = await copyOfBase();
    await fs.writeFile(path.join(repo, 'snapshots', 'README'), 'not a snapshot\n');
    const l = await listed(repo);
    expect(l.ids).toEqual(base.ids);
    expect(l.stderr).toContain('warning: snapshots/README skipped');
    await cli(['-r', repo, 'forget', 'snapshots/README']);
    expect((await listed(repo)).stderr).not.toContain('warning');
  });
});

describe('key slots', () => {
  it('a slot that is not JSON, or asks for a huge KDF, does not stop the password of another; check names the broken one', async () => {
    const repo = await copyOfBase();
    const junk = Buffer.from('{"version": 1, "kdf": ');
    const junkKey = `keys/${toHex(sha256(junk))}`;
    await fs.writeFile(path.join(repo, junkKey), junk);
    const slot = JSON.parse(await fs.readFile(path.join(repo, (await keysUnder(repo, 'keys'))[0] as string), 'utf8')) as { kdf: { N: number } };
    slot.kdf.N = 2 ** 30; // 128 GiB of scrypt memory at r = 8
    const huge = Buffer.from(JSON.stringify(slot));
    await fs.writeFile(path.join(repo, `keys/${toHex(sha256(huge))}`), huge);
    expect((await listed(repo)).ids).toEqual(base.ids);
    const c = await runCli(['-r', repo, 'check'], ENV);
    expect(c.code).toBe(13);
    expect(c.stdout).toContain(`error: ${junkKey}`);
    // The listing order of a directory is the file system's: in memory, the broken
    // slots are listed (and tried) before the one the password opens.
    const first = new MemoryStore();
    await Repository.init(first, 'pw');
    const mem = new MemoryStore();
    await mem.put(junkKey, junk);
    await mem.put(`keys/${toHex(sha256(huge))}`, huge);
    for await (const o of first.list('')) await mem.put(o.key, await first.get(o.key));
    await expect(Repository.open(mem, 'pw')).resolves.toBeInstanceOf(Repository);
  });
});

describe('fail closed', () => {
  it('a damaged drill record protects the snapshot the drill verified from forget', async () => {
    const repo = await copyOfBase();
    const key = base.objects['drill record'] as string;
    await flipByte(path.join(repo, key));
    const r = await cli(['-r', repo, '--json', 'forget', '--keep-last', '1']);
    const out = JSON.parse(r.stdout) as { removed: string[]; groups: Array<{ keep: Array<{ id: string; reasons: string[] }> }> };
    expect(out.removed).not.toContain(base.ids[1]);
    expect(r.stderr).toContain(`warning: ${key} cannot be read`);
    const kept = out.groups.flatMap((g) => g.keep).find((s) => s.id === base.ids[1]);
    expect(kept?.reasons).toContain('a drill record that cannot be read may have verified it');
    expect((await listed(repo)).ids).toContain(base.ids[1]);
  });
});

describe('a lost config', () => {
  it('is not hidden by init, and repair config brings every snapshot back', async () => {
    const repo = await copyOfBase();
    await fs.rm(path.join(repo, 'config'));
    const hint = expectError(await runCli(['-r', repo, 'snapshots'], ENV), 10, /config is missing/);
    expect(hint).toContain('lifeboat repair config');
    expect(hint).not.toContain('lifeboat init');
    const initHint = expectError(await runCli(['init', '-r', repo], ENV), 2, /init refuses to write over it/);
    expect(initHint).toContain('lifeboat repair config');
    expect(await keysUnder(repo, 'keys')).toHaveLength(2); // no new key slot was written
    expect((await cli(['-r', repo, 'repair', 'config'])).stdout).toMatch(/restored from its sealed copy/);
    expect((await listed(repo)).ids).toEqual(base.ids);
    await restoresExactly(repo, base.ids[2] as string);
    for (const id of base.ids.slice(0, 2)) await cli(['-r', repo, 'restore', id, '-t', path.join(tmpdir('lb-damage-out-'), 'out')]);
    await cli(['-r', repo, 'check', '--read-data']);
  });

  it('a forged config is refused after the password opens the key, and repair config restores it', async () => {
    const repo = await copyOfBase();
    const file = path.join(repo, 'config');
    const cfg = JSON.parse(await fs.readFile(file, 'utf8')) as { chunker: { max: number } };
    cfg.chunker.max = 4 * 1024 * 1024 * 1024;
    await fs.writeFile(file, JSON.stringify(cfg, null, 2));
    const hint = expectError(await runCli(['-r', repo, 'snapshots'], ENV), 13, /config does not match its sealed copy/);
    expect(hint).toContain('lifeboat repair config');
    await cli(['-r', repo, 'repair', 'config']);
    expect((await listed(repo)).ids).toEqual(base.ids);
  });
});

describe('check --read-data finds one flipped byte in every kind of object', () => {
  const kinds = ['config', 'config copy', 'key slot', 'snapshot', 'index', 'pack', 'retiring list', 'drill record', 'verification record', 'log file'];
  it.each(kinds)('%s', async (kind) => {
    const repo = await copyOfBase();
    const key = base.objects[kind] as string;
    await flipByte(path.join(repo, key));
    const r = await runCli(['-r', repo, 'check', '--read-data'], ENV);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(13);
    // Packs and snapshots are named by their id, the rest by their key.
    const name = kind === 'pack' ? path.posix.basename(key) : kind === 'snapshot' ? `snapshot ${(base.ids[0] as string).slice(0, 8)}` : key;
    expect(`${r.stdout}\n${r.stderr}`).toContain(name);
  });
});

describe('repair of a repository on several destinations', () => {
  it('copies only objects that authenticate', async () => {
    const one = await copyOfBase();
    const two = path.join(tmpdir('lb-damage-two-'), 'repo');
    await fs.cp(one, two, { recursive: true });
    const config = path.join(path.dirname(two), 'lifeboat.yaml');
    await fs.writeFile(config, `repositories:\n  main:\n    stores:\n      - ${one}\n      - ${two}\n    write_quorum: 2\n`);
    const drill = base.objects['drill record'] as string;
    const snap = base.objects.snapshot as string;
    // Destination two lost a drill record and a snapshot; one's drill record is damaged,
    // its snapshot is whole; one also holds a junk object.
    await fs.rm(path.join(two, drill));
    await fs.rm(path.join(two, snap));
    await flipByte(path.join(one, drill));
    await fs.writeFile(path.join(one, 'snapshots', 'README'), 'junk\n');
    const r = await runCli(['--config', config, '-r', 'main', 'repair'], ENV);
    expectError(r, 13, /1 objects have no good copy on any destination, e\.g\. drills\//);
    expect(r.stderr).toContain('warning: snapshots/README is no part of a repository: not copied');
    await expect(fs.stat(path.join(two, drill))).rejects.toThrow();
    await expect(fs.stat(path.join(two, 'snapshots', 'README'))).rejects.toThrow();
    expect(await fs.readFile(path.join(two, snap))).toEqual(await fs.readFile(path.join(one, snap)));
  });
});

describe('copy', () => {
  it('copies the snapshots that authenticate and names the one that does not', async () => {
    const from = await copyOfBase();
    await flipByte(path.join(from, base.objects.snapshot as string));
    const to = path.join(tmpdir('lb-damage-to-'), 'repo');
    await cli(['init', '-r', to]);
    const r = await cli(['--json', 'copy', '--from-repo', from, '--to-repo', to]);
    expect(r.stderr).toContain(`warning: ${base.objects.snapshot as string} skipped`);
    expect((JSON.parse(r.stdout) as { copied: Array<{ from: string }> }).copied.map((c) => c.from)).toEqual(base.ids.slice(1));
    const copied = (await listed(to)).ids;
    expect(copied).toHaveLength(2);
    await restoresExactly(to, copied[1] as string);
  });
});

describe('decompression bombs', () => {
  it('a sealed object expanding to more than 1 GiB is skipped in bounded memory', async () => {
    const repo = await copyOfBase();
    const r = await Repository.open(new LocalStore(repo), 'pw');
    // Sealed with the repository's own key: it authenticates, and only the bound stops it.
    // Format 2 binds kind and name into the envelope (a snapshot's name is an HMAC of its manifest).
    const snapKey = `snapshots/${'ab'.repeat(32)}`;
    const snapBomb = encrypt(r.key.encKey, r.key.keyId, CODEC.zstd, zstdBomb(true), { kind: 'snapshot', name: snapKey });
    const listBomb = encrypt(r.key.encKey, r.key.keyId, CODEC.zstd, zstdBomb(false), { kind: 'prune' });
    expect(snapBomb.length + listBomb.length).toBeLessThan(256 * 1024);
    const listKey = `prune/${toHex(sha256(listBomb))}`;
    await fs.writeFile(path.join(repo, snapKey), snapBomb);
    await fs.writeFile(path.join(repo, listKey), listBomb);
    expect(BOMB_SIZE).toBeGreaterThan(1024 * 1024 * 1024);

    const l = await runMeasured(['-r', repo, '--json', 'snapshots']);
    expect(l.code, l.stderr).toBe(0);
    expect((JSON.parse(l.stdout) as Array<{ id: string }>).map((s) => s.id)).toEqual(base.ids);
    expect(l.stderr).toContain(`warning: ${snapKey} skipped`);
    expect(l.maxRss).toBeLessThan(400 * 1024 * 1024);

    const target = path.join(tmpdir('lb-damage-out-'), 'out');
    const rs = await runMeasured(['-r', repo, 'restore', base.ids[2] as string, '-t', target]);
    expect(rs.code, rs.stderr).toBe(0);
    expect(rs.stderr).toContain(`warning: ${listKey} skipped`);
    expect(rs.maxRss).toBeLessThan(400 * 1024 * 1024);
    expect(await snapshotOf(path.join(target, base.src))).toEqual(await snapshotOf(base.src));

    const c = await runMeasured(['-r', repo, 'check']);
    expect(c.code).toBe(13);
    expect(c.stdout).toContain(snapKey.slice('snapshots/'.length, 'snapshots/'.length + 8));
    expect(c.stdout).toContain(listKey);
    expect(c.maxRss).toBeLessThan(400 * 1024 * 1024);
  });
});
