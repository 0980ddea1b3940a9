/**
 * lifeboat bucket backup | restore — the objects under an S3 bucket/prefix or an Azure
 * container/prefix as a source: backed up incrementally (by ETag, size and
 * modification time), restored into a bucket, a new directory, or one object.
 */
import type { Command } from 'commander';
import { withRepo, type GlobalOptions } from '../../../cli/context.js';
import { collect, flagOf } from '../../../cli/commands/options.js';
import { snapshotJson } from '../../../cli/commands/snapshots.js';
import { progressFor, printJson } from '../../../cli/output/render.js';
import { restoreRequestOptions } from '../../../config/model.js';
import { parseTargetTime } from '../../../engine/target-time.js';
import { LifeboatError } from '../../../errors.js';
import { formatBytes } from '../../../util/bytes.js';
import { bucketBackup } from '../backup.js';
import { bucketError, openBucket } from '../location.js';
import { checkBucketName } from '../names.js';
import { bucketOptions, DEFAULT_PARALLEL } from '../options.js';
import { bucketPoint } from '../point.js';
import { pickBucketSnapshot, restoreToBucket, restoreToDirectory } from '../restore.js';

const parallelFlag = () => flagOf(bucketOptions().shape.parallel, { arg: '<n>', default: String(DEFAULT_PARALLEL) });

interface BackupFlags {
  name: string;
  parallel: number;
  limitBucketDownload?: number;
  tag: string[];
}

interface RestoreFlags {
  to?: string;
  output?: string;
  force?: boolean;
  time?: string;
  latest?: boolean;
  snapshot?: string;
  object?: string;
  parallel: number;
}

export function register(program: Command): void {
  const bucket = program.command('bucket').description('an S3 bucket or Azure container (or a prefix of one) as a source: backed up by ETag, restored into a bucket or a directory');

  bucket
    .command('backup <location>')
    .description('back up the objects under LOCATION (s3:https://host/bucket/prefix, s3://bucket/prefix, azure:container/prefix); unchanged objects are not read again')
    .requiredOption('--name <name>', 'the source name in the repository')
    .addOption(parallelFlag())
    .addOption(flagOf(bucketOptions().shape.limit_download, { arg: '<KiB/s>' }))
    .option('--tag <tag>', 'tag the snapshot (repeatable)', collect, [])
    .action(async (location: string, f: BackupFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const name = checkBucketName(f.name);
      await withRepo(g, async (repo) => {
        const b = await openBucket(location, { role: 'source', ...(f.limitBucketDownload ? { limitDownloadKiB: f.limitBucketDownload } : {}) });
        try {
          const bar = progressFor(g);
          const s = await bucketBackup(repo, { name, location, objects: b.objects, parallel: f.parallel, tags: f.tag, onProgress: bar.update })
            .catch((err: unknown) => {
              throw bucketError(err, location, 'source');
            })
            .finally(() => bar.done());
          const p = bucketPoint(s);
          if (g.json) return printJson({ ...snapshotJson(s), bucket: p });
          if (!g.quiet && p) {
            console.log(
              `snapshot ${s.id.slice(0, 8)} of bucket ${name}: ${p.objects} objects, ${formatBytes(p.bytes)} (${p.downloaded} read, ${p.reused} unchanged${p.vanished ? `, ${p.vanished} deleted while listing` : ''}), ` +
                `${formatBytes(s.summary.addedBytes)} added; listed ${p.listStarted} to ${p.listEnded}`,
            );
          }
        } finally {
          await b.close();
        }
      });
    });

  bucket
    .command('restore <name>')
    .description('restore a bucket snapshot into a bucket/prefix (--to), a new directory (--output), or one object of it (--object)')
    .option('--to <location>', 'a bucket/prefix to write the objects into, with their content type and metadata (it must hold no objects unless --force)')
    .option('-o, --output <dir>', 'a new directory to write the objects into as files (created, mode 0700)')
    .option('--force', 'with --to: write into a bucket/prefix that holds objects (objects of the same keys are replaced)')
    .addOption(flagOf(restoreRequestOptions().shape.time, { arg: '<rfc3339>', description: 'the newest snapshot at or before this moment, e.g. 2026-11-21T14:30:05Z' }))
    .option('--latest', 'the newest snapshot (the default)')
    .addOption(flagOf(restoreRequestOptions().shape.snapshot, { arg: '<id>', description: 'this snapshot (an id or a prefix of one)' }))
    .option('--object <key>', 'only this object (its key relative to the backed-up prefix)')
    .addOption(parallelFlag())
    .action(async (name: string, f: RestoreFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const chosen = [f.time !== undefined && '--time', f.latest && '--latest', f.snapshot !== undefined && '--snapshot'].filter(Boolean);
      if (chosen.length > 1) throw new LifeboatError('USAGE', `give one of --time, --latest and --snapshot, not ${chosen.join(' and ')}`, { hint: 'without any, the newest snapshot is restored' });
      if ((f.to === undefined) === (f.output === undefined)) {
        throw new LifeboatError('USAGE', f.to === undefined ? 'give --to LOCATION or --output DIR' : 'give --to or --output, not both', {
          hint: '--to writes into a bucket/prefix (s3:…, azure:…); --output writes files into a new directory',
        });
      }
      if (f.force && f.to === undefined) throw new LifeboatError('USAGE', '--force goes with --to', { hint: '--output never replaces anything: give a new directory' });
      const time = f.time === undefined ? undefined : parseTargetTime(f.time);
      await withRepo(g, async (repo) => {
        const snap = await pickBucketSnapshot(repo, { name, ...(f.snapshot !== undefined ? { snapshot: f.snapshot } : {}), ...(time ? { time } : {}) });
        const only = f.object !== undefined ? { only: f.object } : {};
        let r;
        if (f.to !== undefined) {
          const to = f.to;
          const b = await openBucket(to, { role: 'target' });
          try {
            r = await restoreToBucket(repo, snap, b.objects, { force: f.force ?? false, parallel: f.parallel, location: to, ...only }).catch((err: unknown) => {
              throw bucketError(err, to, 'target');
            });
          } finally {
            await b.close();
          }
        } else {
          r = await restoreToDirectory(repo, snap, { output: f.output as string, ...only });
        }
        if (g.json) return printJson({ snapshot: r.snapshot, objects: r.objects, bytes: r.bytes, to: f.to ?? null, output: f.output ?? null });
        if (!g.quiet) console.log(`restored ${r.objects} objects (${formatBytes(r.bytes)}) of bucket ${name} from snapshot ${snap.id.slice(0, 8)} (${snap.time}) to ${f.to ?? f.output ?? ''}`);
      });
    });
}
