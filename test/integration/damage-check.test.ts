/**
 * Damage found and bounded, through the real CLI: `check --read-data` finds one
 * flipped byte in every kind of object and names it, and a sealed object that
 * decompresses to more than 1 GiB is skipped in bounded memory by snapshots, restore
 * and check. (Split from damage.test.ts so two workers share the load.)
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODEC } from '../../src/codec/compression.js';
import { encrypt, sha256 } from '../../src/codec/crypto.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { toHex } from '../../src/util/bytes.js';
import { BOMB_SIZE, zstdBomb } from '../bombs.js';
import { buildBase, copyOfBase, ENV, flipByte, runMeasured, type Base } from '../damage-base.js';
import { cleanupTmp, runCli, snapshotOf, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

let base: Base;
beforeAll(async () => {
  base = await buildBase();
});

describe('check --read-data finds one flipped byte in every kind of object', () => {
  const kinds = ['config', 'config copy', 'key slot', 'snapshot', 'index', 'pack', 'retiring list', 'drill record', 'verification record', 'log file'];
  it.each(kinds)('%s', async (kind) => {
    const repo = await copyOfBase(base);
    const key = base.objects[kind] as string;
    await flipByte(path.join(repo, key));
    const r = await runCli(['-r', repo, 'check', '--read-data'], ENV);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(13);
    // Packs and snapshots are named by their id, the rest by their key.
    const name = kind === 'pack' ? path.posix.basename(key) : kind === 'snapshot' ? `snapshot ${(base.ids[0] as string).slice(0, 8)}` : key;
    expect(`${r.stdout}\n${r.stderr}`).toContain(name);
  });
});

describe('decompression bombs', () => {
  it('a sealed object expanding to more than 1 GiB is skipped in bounded memory', async () => {
    const repo = await copyOfBase(base);
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
