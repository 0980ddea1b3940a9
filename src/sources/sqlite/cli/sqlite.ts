/**
 * lifeboat sqlite backup | replicate | restore — snapshots of a SQLite database,
 * continuous shipping of its WAL, and restores to any moment or of chosen tables.
 */
import type { Command } from 'commander';
import * as path from 'node:path';
import { defaultName, sqliteBackup } from '../backup.js';
import { replicate, type ReplicateEvent } from '../replicate.js';
import { resolveName as sqliteSourceName, sqliteRestore } from '../restore.js';
import { findTransaction, restorePoint, transactionsAround } from '../transactions.js';
import { describeTransactions, type DescribedTxn } from '../txn-tables.js';
import { parseTargetTime } from '../../../engine/target-time.js';
import { parseTxnNumber } from '../../../engine/txn-history.js';
import { LifeboatError } from '../../../errors.js';
import { formatBytes } from '../../../util/bytes.js';
import { findConfig, withRepo, type GlobalOptions } from '../../../cli/context.js';
import type { GraphDeclaration } from '../../graph/options.js';
import { progressFor, duration, printJson } from '../../../cli/output/render.js';
import { snapshotJson } from '../../../cli/commands/snapshots.js';
import { collect, flagOf, historyCommand, parseDuration, parseHistoryFlags, type HistoryFlags } from '../../../cli/commands/options.js';
import { sqliteOptions } from '../options.js';
import { sourceCommonOptions } from '../../../config/model.js';
import { durationMs, type Duration } from '../../../util/duration.js';
import { renderReplicateEvent } from '../../../cli/output/replicate-events.js';
import { restoreRequestOptions } from '../../../config/model.js';
import { stopSignal } from '../../../cli/stop-signal.js';

function busyTimeout(text: string): number {
  return parseDuration(text, '--busy-timeout');
}

export function register(program: Command): void {
  const sqlite = program.command('sqlite').description('SQLite: snapshots, continuous WAL replication, restore to any moment');

  sqlite
    .command('backup <db>')
    .description('a consistent snapshot of a live database (writers keep writing)')
    .option('--name <name>', 'name in the repository (default: the file name without extension)')
    .addOption(flagOf(sourceCommonOptions().shape.tags, { arg: '<tag>', description: 'tag the snapshot (repeatable)' }))
    .option('--busy-timeout <duration>', 'how long to wait for a locked database', '5s')
    .action(async (db: string, f: { name?: string; tag: string[]; busyTimeout: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const bar = progressFor(g);
        const graph = await declaredGraph(g, f.name ?? defaultName(db));
        const s = await sqliteBackup(repo, {
          file: db,
          ...(f.name ? { name: f.name } : {}),
          ...(graph ? { graph } : {}),
          tags: f.tag,
          busyTimeoutMs: busyTimeout(f.busyTimeout),
          onProgress: bar.update,
        }).finally(() => bar.done());
        if (g.json) return printJson(snapshotJson(s));
        if (!g.quiet) {
          console.log(
            `snapshot ${s.id.slice(0, 8)} of ${s.source.name ?? ''}: ${formatBytes(s.summary.totalBytes)}, ` +
              `added ${formatBytes(s.summary.addedBytes)} in ${duration(s.summary.durationMs)}`,
          );
        }
      });
    });

  sqlite
    .command('replicate <db>')
    .description('ship new transactions every interval until SIGINT/SIGTERM (final sync on a clean stop)')
    .option('--name <name>', 'name in the repository (default: the file name without extension)')
    .addOption(flagOf(sqliteOptions().shape.interval, { default: '1s' }))
    .addOption(flagOf(sqliteOptions().shape.snapshot_interval, { default: '1h' }))
    .option('--checkpoint-frames <n>', 'WAL length in frames that triggers a checkpoint', '1000')
    .option('--compact-interval <duration>', 'how often neighbouring log objects are merged', '1min')
    .addOption(flagOf(sqliteOptions().shape.verify_interval, { default: '1min' }))
    .option('--enable-wal', 'switch a rollback-journal database to WAL (persistent)')
    .option('--busy-timeout <duration>', 'how long to wait for a locked database', '5s')
    .action(async (db: string, f: ReplicateFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const frames = Number(f.checkpointFrames);
      if (!Number.isInteger(frames) || frames < 1) {
        throw new LifeboatError('USAGE', '--checkpoint-frames must be a positive whole number', { hint: "SQLite's own default is 1000" });
      }
      const opts = {
        intervalMs: durationMs(f.interval),
        snapshotIntervalMs: durationMs(f.snapshotInterval),
        compactIntervalMs: parseDuration(f.compactInterval, '--compact-interval'),
        verifyIntervalMs: f.verifyInterval === 'off' ? 0 : durationMs(f.verifyInterval),
        busyTimeoutMs: busyTimeout(f.busyTimeout),
      };
      await withRepo(g, async (repo) => {
        const stop = stopSignal();
        const name = f.name ?? defaultName(db);
        const graph = await declaredGraph(g, name);
        const summary = await replicate(repo, {
          file: db,
          name,
          ...(graph ? { graph } : {}),
          checkpointFrames: frames,
          enableWal: f.enableWal ?? false,
          signal: stop.signal,
          ...opts,
          onEvent: (e) => renderReplicateEvent(e, g, eventLine),
        });
        if (g.json) printJson({ kind: 'stopped', ...summary });
        else if (!g.quiet) {
          console.log(
            `stopped: ${summary.commits} transactions in ${summary.segments} segments, ${summary.snapshots} snapshots, ` +
              `${summary.verifications} verifications (generation ${summary.generation})`,
          );
        }
      });
    });

  registerHistory(sqlite);

  sqlite
    .command('restore <name>')
    .description('rebuild the database as of a moment, whole or only some tables')
    .requiredOption('-o, --output <file>', 'where to write the database (must not exist)')
    .addOption(flagOf(restoreRequestOptions().shape.time, { arg: '<rfc3339>', description: 'restore as of this moment, e.g. 2026-11-21T14:30:05Z' }))
    .option('--latest', 'restore the newest transaction stored (the default)')
    .option('--txn <n>', 'restore up to and including transaction N (numbers: `sqlite history`)')
    .option('--before-txn <n>', 'restore up to just before transaction N: undo it and everything after')
    .option('--generation <id>', 'the generation --txn/--before-txn count in (default: the newest)')
    .option('--table <name>', 'restore only this table (repeatable)', collect, [])
    .action(async (name: string, f: RestoreFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const given = [f.time !== undefined && '--time', f.latest && '--latest', f.txn !== undefined && '--txn', f.beforeTxn !== undefined && '--before-txn'].filter((x) => x);
      if (given.length > 1) {
        throw new LifeboatError('USAGE', `give one of --time, --latest, --txn, --before-txn (got ${given.join(' and ')})`, { hint: 'without any, the newest transaction stored is restored' });
      }
      if (f.generation !== undefined && f.txn === undefined && f.beforeTxn === undefined) {
        throw new LifeboatError('USAGE', '--generation goes with --txn or --before-txn', { hint: '`lifeboat sqlite history NAME --around TIME` shows both' });
      }
      const time = f.time === undefined ? undefined : parseTargetTime(f.time);
      const txnArg = f.txn ?? f.beforeTxn;
      const seq = txnArg === undefined ? undefined : txnNumber(txnArg, f.txn !== undefined ? '--txn' : '--before-txn');
      await withRepo(g, async (repo) => {
        const txn = seq === undefined ? undefined : await findTransaction(repo, await sqliteSourceName(repo, name), seq, f.generation);
        const position = txn ? restorePoint(txn, f.txn !== undefined) : undefined;
        if (txn && !g.json && !g.quiet) {
          console.log(`${f.txn !== undefined ? 'up to and including' : 'up to just before'} transaction ${txn.seq} of generation ${txn.generation} (seen ${new Date(txn.time).toISOString()})`);
        }
        const bar = progressFor(g);
        const r = await sqliteRestore(repo, {
          name,
          output: f.output,
          ...(time ? { time } : {}),
          ...(position ? { position } : {}),
          ...(f.table.length ? { tables: f.table } : {}),
          onProgress: bar.update,
        }).finally(() => bar.done());
        if (g.json) {
          return printJson({
            output: r.output,
            snapshot: r.snapshot.id,
            generation: r.generation ?? null,
            ...(txn ? { txn: txn.seq, txn_included: f.txn !== undefined } : {}),
            commits: r.commits,
            segments: r.segments,
            restored_to: r.restoredTo.toISOString(),
            bytes: r.bytes,
            tables: r.tables ?? null,
            integrity: 'ok',
            foreign_key_violations: r.foreignKeyViolations,
            duration_ms: r.durationMs,
          });
        }
        if (!g.quiet) {
          console.log(
            `restored ${name} as of ${r.restoredTo.toISOString()} to ${path.relative(process.cwd(), r.output) || r.output}: ` +
              `snapshot ${r.snapshot.id.slice(0, 8)} + ${r.commits} transactions${r.tables ? ` (tables ${r.tables.join(', ')})` : ''}; ` +
              `integrity ok, ${duration(r.durationMs)}`,
          );
        }
        if (r.foreignKeyViolations > 0 && !g.json) {
          console.error(`warning: foreign_key_check reports ${r.foreignKeyViolations} rows; the database held them at that time (SQLite enforces foreign keys only when asked)`);
        }
      });
    });
}

interface RestoreFlags {
  output: string;
  time?: string;
  latest?: boolean;
  txn?: string;
  beforeTxn?: string;
  generation?: string;
  table: string[];
}

function txnNumber(text: string, flag: string): number {
  return parseTxnNumber(text, flag, 'lifeboat sqlite history NAME --around TIME');
}

function registerHistory(sqlite: Command): void {
  historyCommand(sqlite, 'the transactions near a moment: their numbers, times, pages and the tables they changed')
    .action(async (name: string, f: HistoryFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseHistoryFlags(f, 'each transaction listed is replayed to map its pages to tables');
      const { around } = opts;
      await withRepo(g, async (repo) => {
        const source = await sqliteSourceName(repo, name);
        const { generation, txns } = await transactionsAround(repo, source, opts);
        const described = await describeTransactions(repo, source, generation, txns);
        if (g.json) {
          return printJson({
            name: source,
            generation: generation.generation,
            around: around.toISOString(),
            time_source: 'replicator: when it first saw each transaction in the WAL, at most one poll after the commit',
            transactions: described.map(txnJson),
          });
        }
        if (described.length === 0) {
          console.log(`no transactions stored in generation ${generation.generation} of ${source}`);
          return;
        }
        console.log(`generation ${generation.generation} of ${source}: ${described.length} transactions nearest ${around.toISOString()}`);
        console.log('(times are when the replicator first saw each transaction in the WAL: at most one poll after its commit)');
        console.log(`${'txn'.padStart(8)}  ${'seen at'.padEnd(24)}  ${'pages'.padStart(5)}  tables and indexes (rows or entries +added/-removed)`);
        for (const t of described) {
          const objs = t.objects.map((o) => `${o.name}${o.delta ? ` (${o.delta > 0 ? '+' : ''}${o.delta})` : ''}`).join(', ');
          console.log(`${String(t.seq).padStart(8)}  ${new Date(t.time).toISOString().padEnd(24)}  ${String(t.pages.length).padStart(5)}  ${objs}`);
        }
        console.log(`\nundo one and everything after it: lifeboat sqlite restore ${source} --before-txn N --generation ${generation.generation} -o NEW.db`);
      });
    });
}

function txnJson(t: DescribedTxn) {
  return {
    seq: t.seq,
    generation: t.generation,
    time: new Date(t.time).toISOString(),
    position: t.position,
    pages: t.pages.length,
    db_pages: t.dbPages,
    tables: t.tables,
    objects: t.objects.map((o) => ({ name: o.name, type: o.type, table: o.table ?? null, pages: o.pages, delta: o.delta })),
  };
}

/** The graph lifeboat.yaml declares for the SQLite source of this name (the daemon's jobs pass --config), if any. */
async function declaredGraph(g: GlobalOptions, name: string): Promise<GraphDeclaration | undefined> {
  const source = (await findConfig(g))?.sources.get(name);
  return source?.kind === 'sqlite' ? source.graph : undefined;
}

interface ReplicateFlags {
  name?: string;
  interval: Duration;
  snapshotInterval: Duration;
  checkpointFrames: string;
  compactInterval: string;
  verifyInterval: Duration | 'off';
  enableWal?: boolean;
  busyTimeout: string;
}

/** What `sqlite replicate` says about its own events (the rest is renderReplicateEvent's). */
function eventLine(e: ReplicateEvent): string | undefined {
  if (e.kind === 'generation') return `generation ${e.generation} (${e.reason})`;
  if (e.kind === 'snapshot') return `snapshot ${e.id.slice(0, 8)}: ${formatBytes(e.bytes)}, added ${formatBytes(e.addedBytes)}`;
  if (e.kind === 'compact') return `compacted ${e.merged} log objects into ${e.into}`;
  if (e.kind === 'diverged') return `generation ${e.generation} diverged from the database: ${e.reason}`;
  return undefined;
}
