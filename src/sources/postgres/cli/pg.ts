/**
 * lifeboat pg backup | archive-push | archive-get | restore — PostgreSQL base
 * backups, WAL archiving and point-in-time recovery.
 */
import { printIncomplete } from '../../../cli/commands/restore.js';
import * as path from 'node:path';
import type { Command } from 'commander';
import { LifeboatError } from '../../../errors.js';
import { pgBackup } from '../backup.js';
import { describeChain, pgRestore, planRestore } from '../restore.js';
import { forTerminal } from '../../../util/terminal.js';
import { abortStarts, checkStartablePath, checkStartTools, startRestored, type StartReport } from '../start.js';
import { flagOf } from '../../../cli/commands/options.js';
import { sourceCommonOptions } from '../../../config/model.js';
import { postgresOptions } from '../options.js';
import { archiveGetCommand, portOf, targetOf, timelineOf, type TargetFlags } from './pg-options.js';
import { register as registerVerify } from './pg-verify.js';
import { formatBytes } from '../../../util/bytes.js';
import { findConfig, withRepo, type GlobalOptions } from '../../../cli/context.js';
import { runArchiveCall } from '../../../cli/lean.js';
import { progressFor, duration, printJson } from '../../../cli/output/render.js';
import { register as registerStream } from './pg-stream.js';
import { register as registerDump } from './pg-dump.js';
import { register as registerTimelines } from './pg-timelines.js';
import { register as registerHistory } from './pg-history.js';
import { requirePgPoint } from '../point.js';
import { restoreRequestOptions } from '../../../config/model.js';

interface RestoreFlags extends TargetFlags {
  name: string;
  targetDir: string;
  delta?: boolean;
  snapshot?: string;
  port?: string;
  binDir?: string;
  start?: boolean;
  keepRunning?: boolean;
  check: string[];
}

export function register(program: Command): void {
  const pg = program.command('pg').description('PostgreSQL: base backups, WAL archiving, point-in-time recovery');
  registerVerify(pg);
  registerStream(pg);
  registerDump(pg);
  registerTimelines(pg);
  registerHistory(pg);

  pg.command('backup')
    .description('online base backup of a running cluster')
    .requiredOption('--name <name>', 'name of this cluster in the repository')
    .addOption(flagOf(postgresOptions().shape.dsn, { arg: '<url>', required: true, description: 'connection string (a superuser or a role with pg_backup_start rights)' }))
    .addOption(flagOf(postgresOptions().shape.pgdata, { arg: '<dir>', description: 'local path of the data directory (default: what the server reports)' }))
    .option('--remote', 'use the replication protocol (pg_basebackup) even if the data directory is readable here')
    .option('--spool <dir>', 'where a remote backup is staged (needs room for the whole cluster)')
    .addOption(flagOf(postgresOptions().shape.bin_dir, { arg: '<dir>', description: 'directory holding pg_basebackup' }))
    .addOption(flagOf(sourceCommonOptions().shape.tags, { arg: '<tag>', description: 'tag the snapshot (repeatable)' }))
    .action(async (f: { name: string; dsn: string; pgdata?: string; remote?: boolean; spool?: string; binDir?: string; tag: string[] }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const bar = progressFor(g);
        // The graph lifeboat.yaml declares for this source (the daemon's jobs pass --config).
        const configured = (await findConfig(g))?.sources.get(f.name);
        const graph = configured?.kind === 'postgres' ? configured.graph : undefined;
        const r = await pgBackup(repo, {
          name: f.name,
          dsn: f.dsn,
          ...(graph ? { graph } : {}),
          ...(f.pgdata ? { pgdata: f.pgdata } : {}),
          ...(f.remote ? { remote: true } : {}),
          ...(f.spool ? { spool: f.spool } : {}),
          ...(f.binDir ? { binDir: f.binDir } : {}),
          ...(f.tag.length ? { tags: f.tag } : {}),
          onProgress: bar.update,
        }).finally(() => bar.done());
        const s = r.snapshot;
        for (const e of r.errors) process.stderr.write(`warning: ${e.message}\n`);
        if (g.json) printJson({ id: s.id, time: s.time, consistency: s.consistency, summary: s.summary, errors: r.errors });
        else if (!g.quiet) {
          const c = requirePgPoint(s);
          console.log(
            `base backup ${s.id.slice(0, 8)} of ${f.name}: LSN ${c.startLsn} → ${c.stopLsn} (timeline ${c.timeline}), ` +
              `${s.summary.totalFiles} files, ${formatBytes(s.summary.totalBytes)}, added ${formatBytes(s.summary.addedBytes)} in ${duration(s.summary.durationMs)}`,
          );
        }
        if (r.errors.length > 0) throw new LifeboatError('PARTIAL', `${r.errors.length} file(s) could not be read`, { hint: 'see the warnings above' });
      });
    });

  // archive-push and archive-get run once per WAL segment, so bin/lifeboat.js sends
  // them straight to the lean entry point (../lean.ts) when it can; calls it cannot
  // parse come here and run the same code.
  pg.command('archive-push')
    .description("archive one WAL file (for archive_command = '... pg archive-push --name N %p')")
    .requiredOption('--name <name>', 'cluster name')
    .argument('<path>', 'WAL file (%p)')
    .action((file: string, f: { name: string }, cmd: Command) =>
      runArchiveCall({ verb: 'archive-push', name: f.name, g: cmd.optsWithGlobals<GlobalOptions>(), args: [file] }),
    );

  pg.command('archive-get')
    .description("fetch one WAL file (for restore_command = '... pg archive-get --name N %f %p')")
    .requiredOption('--name <name>', 'cluster name')
    .argument('<walfile>', 'WAL file name (%f)')
    .argument('<dest>', 'where to write it (%p)')
    .option('--prefetch <dir>', 'also fetch the following segments into DIR, and serve later calls from it')
    .action((file: string, dest: string, f: { name: string; prefetch?: string }, cmd: Command) =>
      runArchiveCall({
        verb: 'archive-get',
        name: f.name,
        g: cmd.optsWithGlobals<GlobalOptions>(),
        args: [file, dest],
        ...(f.prefetch ? { prefetch: f.prefetch } : {}),
      }),
    );

  pg.command('restore')
    .description('restore a data directory and set up recovery to a target; then `pg_ctl start`')
    .requiredOption('--name <name>', 'cluster name')
    .requiredOption('--target-dir <dir>', 'new data directory (created; an existing one, even empty, needs --delta)')
    .addOption(flagOf(restoreRequestOptions().shape.time, { arg: '<rfc3339>', description: 'recover to this time' }))
    .option('--lsn <lsn>', 'recover to this LSN')
    .option('--xid <xid>', 'recover to this transaction id')
    .option('--restore-point <name>', 'recover to a point made with pg_create_restore_point()')
    .option('--latest', 'recover all archived WAL (default)')
    .option('--delta', 'restore into an existing directory: an empty one, or a stopped data directory whose files are rewritten only where they differ')
    .addOption(flagOf(restoreRequestOptions().shape.snapshot, { arg: '<id>', description: 'start from this base backup (default: the newest before the target)' }))
    .option('--timeline <n>', "recover along this timeline (default: production's history, see pg timelines)")
    .option('--port <n>', "the copy's port (default: a free one, never the primary's)")
    .addOption(flagOf(postgresOptions().shape.bin_dir, { arg: '<dir>', description: 'directory holding pg_ctl and postgres (default: /usr/lib/postgresql/MAJOR/bin)' }))
    .option('--start', 'start the result, wait for recovery and promotion, run the checks, report the RTO, then stop it')
    .option('--keep-running', 'with --start: leave it running (restarted with its own settings) once the checks pass')
    .addOption(flagOf(postgresOptions().shape.checks, { arg: '<sql>', description: 'with --start: a query whose first value must be true (repeatable; always: SELECT 1 and the database list)' }))
    .action(async (f: RestoreFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const target = targetOf(f);
      const timeline = timelineOf(f.timeline);
      const port = portOf(f.port);
      if ((f.keepRunning || f.check.length > 0) && !f.start) {
        throw new LifeboatError('USAGE', `${f.keepRunning ? '--keep-running' : '--check'} needs --start`, { hint: 'add --start to start the restored server, check it and measure the RTO' });
      }
      const command = (await archiveGetCommand(g, 'restore'))(f.name);
      const push = (await archiveGetCommand(g, 'restore', 'archive-push'))(f.name);
      await withRepo(g, async (repo) => {
        const started = Date.now();
        // Planned and checked before anything is written: the base backup, and the
        // server binaries when the result is to be started.
        const plan = await planRestore(repo, { name: f.name, target, ...(f.snapshot ? { snapshot: f.snapshot } : {}), ...(timeline !== undefined ? { timeline } : {}) });
        const binDir = f.binDir ?? `/usr/lib/postgresql/${requirePgPoint(plan.snapshot).pgMajor}/bin`;
        if (f.start) {
          checkStartTools(binDir);
          checkStartablePath(path.resolve(f.targetDir));
        }
        const r = await pgRestore(repo, {
          plan,
          name: f.name,
          targetDir: f.targetDir,
          target,
          archiveGetCommand: command,
          archivePushCommand: push,
          ...(f.delta ? { delta: true } : {}),
          ...(f.snapshot ? { snapshot: f.snapshot } : {}),
          ...(timeline !== undefined ? { timeline } : {}),
          ...(port !== undefined ? { port } : {}),
        }).catch((err: unknown) => {
          printIncomplete(err);
          throw err;
        });
        for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
        for (const e of r.errors) process.stderr.write(`warning: ${forTerminal(e.path)}: ${e.message}\n`);
        const restoreMs = Date.now() - started;
        let run: StartReport | undefined;
        if (f.start) {
          // Interrupted (the daemon stopping the job, Ctrl-C): stop the server instead of leaving it running.
          const onSignal = () => {
            process.stderr.write('interrupted: stopping the restored server…\n');
            void abortStarts().finally(() => process.exit(130));
          };
          process.once('SIGINT', onSignal);
          process.once('SIGTERM', onSignal);
        }
        if (f.start) run = await startRestored({ dataDir: f.targetDir, port: r.port, binDir, checks: f.check, ...(f.keepRunning ? { keepRunning: true } : {}) });
        // The RTO of the real recovery: restore, start, replay and promotion.
        const rto = run?.recovery_seconds != null ? Math.round(restoreMs + run.recovery_seconds * 1000) / 1000 : null;
        if (g.json) {
          printJson({
            snapshot: r.snapshot.id, targetDir: f.targetDir, files: r.files, unchanged: r.unchanged, removed: r.removed, bytes: r.bytes,
            timeline: r.timeline, port: r.port, archiving: false, recovery: r.recoveryConf, warnings: r.warnings,
            ...(run ? { started: { ...run, restore_seconds: restoreMs / 1000, rto_seconds: rto }, rto_seconds: rto } : {}),
          });
        } else if (!g.quiet && run) {
          console.log(`restored base backup ${r.snapshot.id.slice(0, 8)} of ${f.name} to ${f.targetDir}: ${r.files} files, ${formatBytes(r.bytes)} written in ${duration(restoreMs)}`);
          for (const c of run.checks) console.log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
          if (rto !== null) console.log(`RTO ${rto}s (restore ${duration(restoreMs)}, start, recovery and promotion ${run.recovery_seconds}s)`);
          console.log(run.running ? `running on port ${r.port} with its own settings (pg_ctl -D ${f.targetDir} stop stops it)` : `stopped; start it with pg_ctl -D ${f.targetDir} start (port ${r.port})`);
        } else if (!g.quiet) {
          console.log(
            `restored base backup ${r.snapshot.id.slice(0, 8)} of ${f.name} to ${f.targetDir}: ${r.files} files, ${formatBytes(r.bytes)} written` +
              (f.delta ? ` (${r.unchanged} files already matched, ${r.removed} extra entries removed)` : '') +
              ` in ${duration(Date.now() - started)}\n` +
              `recovery: ${target.kind === 'latest' ? 'all archived WAL' : r.recoveryConf.filter((l) => l.startsWith('recovery_target_') && !l.includes('timeline') && !l.includes('action')).join(', ')} along timeline ${describeChain(r.chain)}\n` +
              `start it with ${f.binDir ? `${f.binDir}/` : ''}pg_ctl -D ${f.targetDir} start: it listens on port ${r.port} and does not archive (postgresql.auto.conf says how to turn archiving on if it becomes the primary)`,
          );
        }
        if (run && !run.ok) {
          if (run.log && !g.json) process.stderr.write(`${run.log}\n`);
          const bad = run.checks.find((c) => !c.ok);
          throw new LifeboatError('RECOVERY_FAILED', `the restored server ${bad?.name === 'start' ? 'did not recover' : `failed check ${bad?.name ?? ''}`}: ${bad?.detail ?? 'unknown'}`, {
            hint: `the data directory ${f.targetDir} is kept; its server log is above, \`pg_ctl -D ${f.targetDir} start\` starts it by hand`,
          });
        }
      });
    });
}
