/**
 * prune never loses data a snapshot needs, whatever the index claims and whatever runs
 * beside it: an attacker's index (every blob mapped to a missing or a wrong pack, plus
 * a retiring list naming every pack); an old index file uploaded again after its packs
 * were pruned; one live blob in two packs on two retiring lists swept by two prunes at
 * once; backups, restores and checks started around prunes that sweep.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blobId } from '../../src/codec/crypto.js';
import { BLOB_DATA } from '../../src/repo/format.js';
import { prune } from '../../src/repo/maintenance/prune.js';
import { Repository } from '../../src/repo/repository.js';
import type { IndexedPack } from '../../src/repo/index/index-file.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import type { GetOptions, ByteRange, Store } from '../../src/storage/store.js';
import { cleanupTmp, cliExpecting, initRepo, pseudoRandom, runCli, snapshotOf, snapshotsJson, tmpdir } from '../helpers.js';
import { withPackWriter } from '../../src/repo/pack/spill.js';

afterAll(cleanupTmp);

const PW = 'pw';
const ENV = { LIFEBOAT_PASSWORD: PW };
const cli = (args: string[], code = 0) => cliExpecting(args, code, ENV);
const HOUR_AGO = () => new Date(Date.now() - 3_600_000).toISOString();

async function makeData(dir: string, seed: number, files = 3, size = 2 << 20): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  for (let i = 0; i < files; i++) await fs.writeFile(path.join(dir, `f${i}.bin`), pseudoRandom(size, seed * 100 + i));
}

async function snapshotList(repo: string): Promise<Array<{ id: string; paths: string[]; time: string }>> {
  return snapshotsJson(repo, PW);
}

/** The snapshot restores to exactly what `expected` describes. */
async function expectRestore(repo: string, id: string, src: string, expected: Record<string, unknown>): Promise<void> {
  const target = path.join(tmpdir('lb-ps-restore-'), 'out');
  const r = await runCli(['-r', repo, 'restore', id, '--target', target], ENV);
  expect(r.code, r.stderr).toBe(0);
  expect(await snapshotOf(path.join(target, src))).toEqual(expected);
}

async function open(repo: string, store: Store = new LocalStore(repo)): Promise<Repository> {
  return Repository.open(store, PW);
}

async function packsOf(repo: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await fs.readdir(path.join(repo, 'data'))) for (const f of await fs.readdir(path.join(repo, 'data', d))) out.push(f);
  return out.sort();
}

describe('prune does not trust index files', () => {
  it('an attacker index mapping every blob to a missing or a wrong pack, with a list naming every pack, costs no data', async () => {
    const dir = tmpdir('lb-ps-attack-');
    const repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    const src = path.join(dir, 'src');
    await makeData(src, 1);
    await cli(['-r', repo, 'backup', src]);
    const expected = await snapshotOf(src);
    const realPacks = await packsOf(repo);

    // The attacker holds a key (here even a full one, so its list is trusted: an
    // append-only key's list would simply be ignored, see keys-v2.test.ts).
    const evil = await open(repo);
    await evil.loadIndex();
    const entries: IndexedPack['entries'] = [];
    evil.index.forEach((id, loc) => entries.push({ type: loc.type, id: Buffer.from(id), offset: 0, length: 64, rawLength: loc.rawLength }));
    // A pack of its own, and an index file naming it for every blob, besides one
    // naming a pack that does not exist. Low ids win a naive "lowest pack id" tie.
    await withPackWriter(evil, async (writer) => {
      await writer.addPlain(BLOB_DATA, randomBytes(4096));
      await writer.flush();
    });
    const junk = (await packsOf(repo)).find((p) => !realPacks.includes(p)) as string;
    await evil.writeIndex([{ packId: Buffer.alloc(32, 0), entries }]);
    await evil.writeIndex([{ packId: Buffer.from(junk, 'hex'), entries }]);
    await evil.saveRetiring({ time: HOUR_AGO(), hostname: 'evil', packs: realPacks });

    // The administrator's ordinary prunes.
    // A pack may go only once every blob its header lists has a verified copy
    // elsewhere: the forged entries make prune repack, never lose.
    for (let i = 0; i < 3; i++) await cli(['-r', repo, 'prune', '--grace', '0']);
    const [snap] = await snapshotList(repo);
    await expectRestore(repo, snap!.id, src, expected);
    // The sweep also rewrote the index files without the pack that does not exist.
    expect((await cli(['-r', repo, 'check', '--read-data'])).stdout).toMatch(/no errors/);
  });

  it('an old index file uploaded again after its packs were pruned is not deduplicated against', async () => {
    const dir = tmpdir('lb-ps-replay-');
    const repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    const src = path.join(dir, 'src');
    await makeData(src, 2);
    await cli(['-r', repo, 'backup', src]);
    const saved = new Map<string, Buffer>();
    for (const f of await fs.readdir(path.join(repo, 'index'))) saved.set(f, await fs.readFile(path.join(repo, 'index', f)));
    const [old] = await snapshotList(repo);
    await cli(['-r', repo, 'forget', old!.id]);
    await cli(['-r', repo, 'prune', '--grace', '0']);
    await cli(['-r', repo, 'prune', '--grace', '0']);
    expect(await packsOf(repo)).toHaveLength(0);

    for (const [f, bytes] of saved) await fs.writeFile(path.join(repo, 'index', f), bytes);
    await cli(['-r', repo, 'backup', src]);
    const [again] = await snapshotList(repo);
    await expectRestore(repo, again!.id, src, await snapshotOf(src));
  });
});

/** A store whose reads of some index files are held back: fixes the order index files finish loading in. */
class SlowIndexStore extends LocalStore {
  constructor(
    root: string,
    private readonly slow: Set<string>,
  ) {
    super(root);
  }

  override async get(key: string, range?: ByteRange, _opts?: GetOptions): Promise<Uint8Array> {
    if (this.slow.has(key)) await new Promise((r) => setTimeout(r, 300));
    return super.get(key, range);
  }
}

/**
 * One live blob in two packs, each on its own retiring list (what a repack and a
 * concurrent backup leave). Returns the index file naming the second copy.
 */
async function twoCopies(repo: string, src: string): Promise<{ content: Buffer; blob: Buffer; second: string }> {
  // One file below the chunker's minimum size: one blob, the whole file.
  const content = await fs.readFile(path.join(src, 'f0.bin'));
  const before = new Set(await fs.readdir(path.join(repo, 'index')));
  const r0 = await open(repo);
  await r0.loadIndex();
  const blob = blobId(r0.key, content);
  const first = r0.index.packId(r0.lookup(blob).packIndex).toString('hex');
  const r = await open(repo); // no index loaded: the writer stores the blob again
  await withPackWriter(r, async (writer) => {
    await writer.addPlain(BLOB_DATA, content);
    await writer.flush();
  });
  const second = (await fs.readdir(path.join(repo, 'index'))).find((f) => !before.has(f)) as string;
  const copy = (await packsOf(repo)).find((p) => p !== first && !(r0.index.hasPack(p))) as string;
  await r.saveRetiring({ time: HOUR_AGO(), hostname: 'a', packs: [first] });
  await r.saveRetiring({ time: HOUR_AGO(), hostname: 'b', packs: [copy] });
  return { content, blob, second: `index/${second}` };
}

async function blobSurvives(repo: string, blob: Buffer, content: Buffer): Promise<void> {
  const r = await open(repo);
  await r.loadIndex();
  expect((await r.loadBlob(blob)).equals(content)).toBe(true);
}

describe('two prunes at once', () => {
  it('keep the same copy of a blob whatever order their index files load in', async () => {
    const dir = tmpdir('lb-ps-two-');
    const repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    const src = path.join(dir, 'src');
    await makeData(src, 3, 1, 256 << 10);
    await cli(['-r', repo, 'backup', src]);
    const { content, blob, second } = await twoCopies(repo, src);
    const firstFiles = (await fs.readdir(path.join(repo, 'index'))).map((f) => `index/${f}`).filter((f) => f !== second);
    // One prune finishes loading the second copy's index last, the other the first's.
    const a = await open(repo, new SlowIndexStore(repo, new Set([second])));
    const b = await open(repo, new SlowIndexStore(repo, new Set(firstFiles)));
    const results = await Promise.all([prune(a, { graceMs: 0 }), prune(b, { graceMs: 0 })]);
    expect(results.map((r) => r.deleted).reduce((x, y) => x + y)).toBeLessThanOrEqual(1);
    await blobSurvives(repo, blob, content);
    const [snap] = await snapshotList(repo);
    await expectRestore(repo, snap!.id, src, await snapshotOf(src));
  });

  it('through the CLI, pair after pair: both exit 0 and the blob survives', async () => {
    const dir = tmpdir('lb-ps-pairs-');
    const base = path.join(dir, 'base');
    await initRepo(base, ENV.LIFEBOAT_PASSWORD);
    const src = path.join(dir, 'src');
    await makeData(src, 4, 1, 256 << 10);
    await cli(['-r', base, 'backup', src]);
    // A fixed number of pairs, however loaded the machine (PRUNE_PAIRS=250 for a long run).
    const total = Number(process.env.PRUNE_PAIRS ?? 5);
    let pairs = 0;
    while (pairs < total) {
      const repo = path.join(dir, `r${pairs++}`);
      await fs.cp(base, repo, { recursive: true });
      const { content, blob } = await twoCopies(repo, src);
      const both = await Promise.all([0, 1].map(() => runCli(['-r', repo, '--json', 'prune', '--grace', '0'], ENV)));
      for (const r of both) expect(r.code, r.stderr).toBe(0);
      await blobSurvives(repo, blob, content);
      await fs.rm(repo, { recursive: true, force: true });
    }
  }, 600_000);
});

describe('prune beside everything else', () => {
  it('backups, restores and checks started around sweeping prunes all succeed, restores exact', async () => {
    const dir = tmpdir('lb-ps-beside-');
    const repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    const src = path.join(dir, 'src');
    const expected = new Map<string, Record<string, unknown>>();
    const failures: string[] = [];
    const run = async (args: string[]) => {
      const r = await runCli(['-r', repo, ...args], ENV);
      if (r.code !== 0) failures.push(`${args.join(' ')}: ${r.stderr.trim()}`);
      return r;
    };
    // A fixed number of rounds, however loaded the machine (PRUNE_ROUNDS=40 for a long run).
    const total = Number(process.env.PRUNE_ROUNDS ?? 4);
    let rounds = 0;
    while (rounds < total) {
      rounds++;
      // New content each round, sharing some with the last (files change one by one).
      await makeData(src, 100 + rounds, 1, 512 << 10);
      await fs.writeFile(path.join(src, `r${rounds % 3}.bin`), pseudoRandom(512 << 10, 7000 + rounds));
      const snaps = await snapshotList(repo);
      const last = snaps[snaps.length - 1];
      const target = path.join(tmpdir('lb-ps-r-'), 'out');
      const jobs: Array<Promise<unknown>> = [
        run(['backup', src]).then(async (r) => {
          if (r.code === 0) expected.set((await snapshotList(repo)).at(-1)!.id, await snapshotOf(src));
        }),
        run(['prune', '--grace', '0']),
      ];
      if (last && expected.has(last.id)) {
        jobs.push(
          run(['restore', last.id, '--target', target]).then(async (r) => {
            if (r.code === 0) expect(await snapshotOf(path.join(target, src))).toEqual(expected.get(last.id));
          }),
        );
      }
      if (rounds % 3 === 0) jobs.push(run(['check']));
      if (rounds % 2 === 0) jobs.push(run(['ls', 'latest']));
      // Keep two snapshots: the older ones' data is what the prunes sweep.
      if (snaps.length > 2) jobs.push(run(['forget', ...snaps.slice(0, snaps.length - 2).map((s) => s.id)]));
      await Promise.all(jobs);
    }
    expect(failures).toEqual([]);
    await cli(['-r', repo, 'prune', '--grace', '0']);
    expect((await cli(['-r', repo, 'check', '--read-data'])).stdout).toMatch(/no errors/);
  }, 600_000);
});
