/**
 * prune on a synthetic repository of N million blobs (docs/performance.md, "prune").
 * The data packs are only indexed (their bytes are never read by prune); the trees
 * that reference them are real, so marking walks real trees. Ten snapshots each own
 * a tenth of the blobs; five are forgotten, so half the data is dead.
 *
 *   npx tsx bench/prune-bench.ts [millions=1]
 *
 * Each step runs in its own process so its peak RSS is its own (GNU time -v).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BLOB_DATA } from '../src/repo/format.js';
import { prune } from '../src/repo/maintenance/prune.js';
import { Repository, PROGRAM_VERSION } from '../src/repo/repository.js';
import type { TreeNode } from '../src/repo/snapshot/tree.js';
import { LocalStore } from '../src/storage/local/local-store.js';
import { withPackWriter } from '../src/repo/pack/spill.js';

const SELF = fileURLToPath(import.meta.url);
const BLOBS_PER_PACK = 1000;
const BLOBS_PER_TREE = 1000;
const SNAPSHOTS = 10;

async function setup(dir: string, n: number): Promise<void> {
  const store = new LocalStore(dir);
  await Repository.init(store, 'bench');
  const repo = await Repository.open(store, 'bench');
  await withPackWriter(repo, async (writer) => {
    const perSnapshot = Math.ceil(n / SNAPSHOTS);
    let made = 0;
    for (let s = 0; s < SNAPSHOTS; s++) {
      const subtrees: TreeNode[] = [];
      for (let t = 0; t * BLOBS_PER_TREE < perSnapshot && made < n; t++) {
        const count = Math.min(BLOBS_PER_TREE, perSnapshot - t * BLOBS_PER_TREE, n - made);
        const ids: Buffer[] = [];
        for (let i = 0; i < count; i++) ids.push(randomBytes(32));
        // Index the blobs in fake packs of BLOBS_PER_PACK. Their bytes are never read while
        // marking, but loading the index drops entries of packs that are not stored, so each
        // is stored as a tiny placeholder (a sweep finds its header unreadable and keeps it).
        for (let p = 0; p < ids.length; p += BLOBS_PER_PACK) {
          const chunk = ids.slice(p, p + BLOBS_PER_PACK);
          const packId = randomBytes(32);
          await store.put(`data/${packId.toString('hex').slice(0, 2)}/${packId.toString('hex')}`, Buffer.from('placeholder'));
          await repo.writeIndex([{ packId, entries: chunk.map((id, i) => ({ id, type: BLOB_DATA, offset: i * 1024, length: 1024, rawLength: 1024 })) }]);
        }
        const nodes: TreeNode[] = [];
        for (let f = 0; f < ids.length; f += 100) {
          nodes.push({ name: `f${f}`, type: 'file', mode: 0o644, size: 100 * 1024, uid: 0, gid: 0, mtime: '0', ctime: '0', inode: '0', dev: '0', nlink: 1, content: ids.slice(f, f + 100).map((b) => b.toString('hex')) });
        }
        const tree = await repo.saveTree(writer, { nodes });
        subtrees.push({ name: `d${t}`, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: '0', ctime: '0', inode: '0', dev: '0', nlink: 2, subtree: tree });
        made += count;
      }
      const root = await repo.saveTree(writer, { nodes: subtrees });
      await writer.flush();
      await repo.saveSnapshot({
        version: 1,
        time: new Date().toISOString(),
        hostname: 'bench',
        username: 'bench',
        paths: [`/s${s}`],
        tags: [],
        excludes: [],
        tree: root,
        source: { kind: 'files' },
        summary: { filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirs: 0, totalBytes: 0, totalFiles: 0, addedBytes: 0, processedBytes: 0, errors: 0, durationMs: 0 },
        programVersion: PROGRAM_VERSION,
      });
    }
    for (const s of (await repo.listSnapshots()).slice(0, SNAPSHOTS / 2)) await store.delete(`snapshots/${s.id}`);
  });
}

async function runPrune(dir: string): Promise<void> {
  const repo = await Repository.open(new LocalStore(dir), 'bench');
  const t = performance.now();
  const r = await prune(repo, { graceMs: 0 });
  console.log(JSON.stringify({ seconds: (performance.now() - t) / 1000, blobs: r.blobs, live: r.liveBlobs, retired: r.retired, deleted: r.deleted }));
}

/** Runs a step in its own process under GNU time; returns its output, wall time and peak RSS. */
function timed(args: string[]): { out: string; wall: number; rssMb: number } {
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, '--import', 'tsx', SELF, ...args], {
    encoding: 'utf8',
    env: { ...process.env, LIFEBOAT_TEST_KDF: 'fast' },
  });
  if (r.status !== 0) throw new Error(`step ${args[0]} failed: ${r.stderr}`);
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  return { out: r.stdout.trim(), wall: (performance.now() - t) / 1000, rssMb: m ? Math.round(Number(m[1]) / 1024) : NaN };
}

async function main(): Promise<void> {
  const [mode, dir, arg] = process.argv.slice(2);
  if (mode === '--setup') return setup(dir as string, Number(arg));
  if (mode === '--prune') return runPrune(dir as string);
  const millions = Number(mode ?? 1);
  for (const n of [millions / 4, millions / 2, millions].map((m) => Math.round(m * 1e6))) {
    const d = mkdtempSync(path.join(os.tmpdir(), 'lb-prune-bench-'));
    try {
      console.log(`${n} blobs: set up in ${timed(['--setup', d, String(n)]).wall.toFixed(1)} s`);
      for (const label of ['prune (marks half)', 'prune again (sweeps)']) {
        const r = timed(['--prune', d]);
        console.log(`${n} blobs, ${label}: ${r.out}, peak RSS ${r.rssMb} MB`);
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }
}

await main();
