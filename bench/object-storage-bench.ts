/**
 * Backup and restore throughput to a local S3-compatible server (s3rver on
 * 127.0.0.1) against the local filesystem store, and restic against the same server,
 * on the same data in one run (docs/performance.md, "Object storage").
 * Goal: S3 no more than 1.5x slower than local.
 *
 * Run: npm run build && npx tsx bench/object-storage-bench.ts   (env: DATA=/usr/lib/x86_64-linux-gnu)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3_ENV, startS3rver } from '../test/s3rver.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin', 'lifeboat.js');
const DATA = process.env.DATA ?? '/usr/lib/x86_64-linux-gnu';
const work = mkdtempSync(path.join(os.tmpdir(), 'lb-os-bench-'));
const env = { ...process.env, ...S3_ENV, LIFEBOAT_PASSWORD: 'bench', RESTIC_PASSWORD: 'bench', AWS_CA_BUNDLE: '' };

function timed(label: string, cmd: string, args: string[]): number {
  const t = performance.now();
  execFileSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26 });
  const s = (performance.now() - t) / 1000;
  console.log(`  ${label}: ${s.toFixed(2)} s`);
  return s;
}

function dropTarget(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const size = Number(execFileSync('du', ['-sb', DATA], { encoding: 'utf8' }).split('\t')[0]);
  console.log(`# object storage benchmark, ${new Date().toISOString()}, data ${DATA} (${(size / 1e6).toFixed(0)} MB), ${os.cpus().length} CPUs`);
  const server = await startS3rver();
  await server.createBucket('bench');
  const results: Record<string, { backup: number; restore: number }> = {};
  try {
    const targets: Array<[string, string]> = [
      ['lifeboat local', path.join(work, 'local-repo')],
      ['lifeboat s3', `s3:${server.endpoint}/bench/lifeboat`],
    ];
    for (const [label, repo] of targets) {
      console.log(label);
      execFileSync(process.execPath, [CLI, 'init', '-r', repo], { env, stdio: 'ignore' });
      const backup = timed('backup', process.execPath, [CLI, '-r', repo, '-q', 'backup', DATA]);
      const target = path.join(work, 'restore');
      const restore = timed('restore', process.execPath, [CLI, '-r', repo, '-q', 'restore', 'latest', '--target', target]);
      dropTarget(target);
      results[label] = { backup, restore };
    }
    console.log('restic s3');
    const resticRepo = `s3:${server.endpoint}/bench/restic`;
    try {
      execFileSync('restic', ['-r', resticRepo, 'init'], { env, stdio: 'ignore' });
      const backup = timed('backup', 'restic', ['-r', resticRepo, '--quiet', 'backup', DATA]);
      const target = path.join(work, 'restore');
      const restore = timed('restore', 'restic', ['-r', resticRepo, '--quiet', 'restore', 'latest', '--target', target]);
      dropTarget(target);
      results['restic s3'] = { backup, restore };
    } catch (err) {
      // restic 0.14 (Debian) cannot read back what s3rver serves: "Unmarshal: invalid character".
      console.log(`  restic could not use this server: ${String((err as Error).message).split('\n')[0]}`);
    }
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const mbps = (s: number) => `${(size / 1e6 / s).toFixed(0)} MB/s`;
  console.log('\n| run | backup | restore |\n|---|---|---|');
  for (const [label, r] of Object.entries(results)) console.log(`| ${label} | ${r.backup.toFixed(2)} s (${mbps(r.backup)}) | ${r.restore.toFixed(2)} s (${mbps(r.restore)}) |`);
  const local = results['lifeboat local'];
  const s3 = results['lifeboat s3'];
  if (local && s3) console.log(`\nS3 vs local: backup ${(s3.backup / local.backup).toFixed(2)}x, restore ${(s3.restore / local.restore).toFixed(2)}x (goal <= 1.5x)`);
}

await main();
