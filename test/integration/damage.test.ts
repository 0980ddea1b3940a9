/**
 * Damage to one object stays local, through the real CLI: a damaged, foreign or
 * junk object in snapshots/, prune/, drills/ or state/ is skipped with a warning
 * naming it while the other snapshots list, restore exactly and backups go on; a
 * damaged drill record protects the snapshot it may have verified; a lost config is
 * refused by init and restored by `repair config`; repair and copy take only objects
 * that authenticate. damage-check.test.ts has `check --read-data` and the bombs.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/codec/crypto.js';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { toHex } from '../../src/util/bytes.js';
import { buildBase, cli, copyOfBase, ENV, flipByte, keysUnder, listed, restoresExactly, type Base } from '../damage-base.js';
import { cleanupTmp, expectError, initRepo, runCli, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

let base: Base;
beforeAll(async () => {
  base = await buildBase();
});

describe('one damaged record stays local', () => {
  it.each(['snapshot', 'retiring list', 'drill record', 'verification record'])(
    'a damaged %s: the other snapshots list and restore exactly, backup works, check names it',
    async (kind) => {
      const repo = await copyOfBase(base);
      const key = base.objects[kind] as string;
      await flipByte(path.join(repo, key));
      const expected = kind === 'snapshot' ? base.ids.slice(1) : base.ids;
      const l = await listed(repo);
      expect(l.ids).toEqual(expected);
      if (kind === 'snapshot') expect(l.stderr).toContain(`warning: ${key} skipped`);
      const restored = await restoresExactly(base, repo, base.ids[2] as string);
      if (kind === 'retiring list') expect(restored.stderr).toContain(`warning: ${key} skipped`);
      await cli(['-r', repo, 'backup', base.src]);
      expect((await listed(repo)).ids).toHaveLength(expected.length + 1);
      const c = await runCli(['-r', repo, 'check'], ENV);
      expect(c.code, c.stdout + c.stderr).toBe(13);
      expect(c.stdout).toContain(kind === 'snapshot' ? `error: snapshot ${(base.ids[0] as string).slice(0, 8)}` : `error: ${key}`);
    },
  );

  it('a damaged snapshot can be forgotten by its full id, and then check passes', async () => {
    const repo = await copyOfBase(base);
    const id = base.ids[0] as string;
    await flipByte(path.join(repo, 'snapshots', id));
    await cli(['-r', repo, 'forget', id]);
    const l = await listed(repo);
    expect(l.ids).toEqual(base.ids.slice(1));
    expect(l.stderr).not.toContain('warning');
    await cli(['-r', repo, 'check']);
  });

  it('a junk object in snapshots/ is skipped and can be forgotten by its object name', async () => {
    const repo = await copyOfBase(base);
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
    const repo = await copyOfBase(base);
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
    const repo = await copyOfBase(base);
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
    const repo = await copyOfBase(base);
    await fs.rm(path.join(repo, 'config'));
    const hint = expectError(await runCli(['-r', repo, 'snapshots'], ENV), 10, /config is missing/);
    expect(hint).toContain('lifeboat repair config');
    expect(hint).not.toContain('lifeboat init');
    const initHint = expectError(await runCli(['init', '-r', repo], ENV), 2, /init refuses to write over it/);
    expect(initHint).toContain('lifeboat repair config');
    expect(await keysUnder(repo, 'keys')).toHaveLength(2); // no new key slot was written
    expect((await cli(['-r', repo, 'repair', 'config'])).stdout).toMatch(/restored from its sealed copy/);
    expect((await listed(repo)).ids).toEqual(base.ids);
    await restoresExactly(base, repo, base.ids[2] as string);
    for (const id of base.ids.slice(0, 2)) await cli(['-r', repo, 'restore', id, '-t', path.join(tmpdir('lb-damage-out-'), 'out')]);
    await cli(['-r', repo, 'check', '--read-data']);
  });

  it('a forged config is refused after the password opens the key, and repair config restores it', async () => {
    const repo = await copyOfBase(base);
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

describe('repair of a repository on several destinations', () => {
  it('copies only objects that authenticate', async () => {
    const one = await copyOfBase(base);
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
    // Two's copy of the largest pack is cut short (an upload the server took part of):
    // reads pass over it while one's is good, so only repair can find it, by its size.
    const pack = base.objects.pack as string;
    await fs.truncate(path.join(two, pack), 1000);
    const r = await runCli(['--config', config, '-r', 'main', 'repair'], ENV);
    expectError(r, 13, /1 objects have no good copy on any destination, e\.g\. drills\//);
    expect(r.stderr).toContain('warning: snapshots/README is no part of a repository: not copied');
    await expect(fs.stat(path.join(two, drill))).rejects.toThrow();
    await expect(fs.stat(path.join(two, 'snapshots', 'README'))).rejects.toThrow();
    expect(await fs.readFile(path.join(two, snap))).toEqual(await fs.readFile(path.join(one, snap)));
    expect(await fs.readFile(path.join(two, pack))).toEqual(await fs.readFile(path.join(one, pack)));
  });
});

describe('copy', () => {
  it('copies the snapshots that authenticate and names the one that does not', async () => {
    const from = await copyOfBase(base);
    await flipByte(path.join(from, base.objects.snapshot as string));
    const to = path.join(tmpdir('lb-damage-to-'), 'repo');
    await initRepo(to, ENV.LIFEBOAT_PASSWORD);
    const r = await cli(['--json', 'copy', '--from-repo', from, '--to-repo', to]);
    expect(r.stderr).toContain(`warning: ${base.objects.snapshot as string} skipped`);
    expect((JSON.parse(r.stdout) as { copied: Array<{ from: string }> }).copied.map((c) => c.from)).toEqual(base.ids.slice(1));
    const copied = (await listed(to)).ids;
    expect(copied).toHaveLength(2);
    await restoresExactly(base, to, copied[1] as string);
  });
});

