/**
 * lifeboat redis restore NAME — the data of a Redis server as of a moment (or a
 * snapshot), as dump.rdb in a new directory or loaded into a running, empty server.
 */
import type { Command } from 'commander';
import { cliWarn, withRepo, type GlobalOptions } from '../../../cli/context.js';
import { collect, flagOf } from '../../../cli/commands/options.js';
import { duration, printJson } from '../../../cli/output/render.js';
import { parseTargetTime } from '../../../engine/target-time.js';
import { LifeboatError } from '../../../errors.js';
import { formatBytes } from '../../../util/bytes.js';
import { redisPassword } from '../connection.js';
import { redisRestore, type RedisRestoreResult } from '../restore.js';
import { cutOf, findTransaction, type RedisTxn } from '../transactions.js';
import { parseTxnNumber } from '../../../engine/txn-history.js';
import { restoreRequestOptions } from '../../../config/model.js';
import { stopSignal } from '../../../cli/stop-signal.js';

interface RestoreFlags {
  output?: string;
  to?: string;
  force?: boolean;
  time?: string;
  latest?: boolean;
  snapshot?: string;
  txn?: string;
  beforeTxn?: string;
  generation?: string;
  check: string[];
  redisPasswordFile?: string;
  redisServer?: string;
}

export function registerRestore(redis: Command): void {
  redis
    .command('restore <name>')
    .description('rebuild the data as of a moment (base RDB + command stream replayed in a private scratch redis-server), checked, as dump.rdb or into a running server')
    .option('-o, --output <dir>', 'a new directory to write dump.rdb into (created, mode 0700)')
    .option('--to <url>', 'load into this running server instead, redis://HOST:PORT (it must be empty unless --force)')
    .option('--force', 'with --to: load into a server that holds keys (restored keys replace their namesakes)')
    .addOption(flagOf(restoreRequestOptions().shape.time, { arg: '<rfc3339>', description: 'restore as of this moment, e.g. 2026-11-21T14:30:05Z' }))
    .option('--latest', 'restore the newest data stored (the default)')
    .addOption(flagOf(restoreRequestOptions().shape.snapshot, { arg: '<id>', description: 'restore this snapshot alone, without replaying commands' }))
    .option('--txn <n>', 'restore up to and including transaction N (numbers: `redis history`)')
    .option('--before-txn <n>', 'restore up to just before transaction N: undo it and everything after')
    .option('--generation <id>', 'the generation --txn/--before-txn count in (default: the newest)')
    .option('--check <check>', 'a check the restored data must pass: "COMMAND ARG… => REPLY" (repeatable)', collect, [])
    .option('--redis-password-file <file>', "with --to: the target's password (first line; or LIFEBOAT_REDIS_PASSWORD)")
    .option('--redis-server <bin>', 'the redis-server binary for the scratch server (default: from PATH)')
    .action(async (name: string, f: RestoreFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const chosen = [
        f.time !== undefined && '--time',
        f.latest && '--latest',
        f.snapshot !== undefined && '--snapshot',
        f.txn !== undefined && '--txn',
        f.beforeTxn !== undefined && '--before-txn',
      ].filter(Boolean);
      if (chosen.length > 1) {
        throw new LifeboatError('USAGE', `give one of --time, --latest, --snapshot, --txn and --before-txn, not ${chosen.join(' and ')}`, { hint: 'without any, the newest data stored is restored' });
      }
      if (f.generation !== undefined && f.txn === undefined && f.beforeTxn === undefined) {
        throw new LifeboatError('USAGE', '--generation goes with --txn or --before-txn', { hint: '`lifeboat redis history NAME --around TIME` shows both' });
      }
      const txnArg = f.txn ?? f.beforeTxn;
      const include = f.txn !== undefined;
      const seq = txnArg === undefined ? undefined : parseTxnNumber(txnArg, include ? '--txn' : '--before-txn', 'lifeboat redis history NAME --around TIME');
      if ((f.output === undefined) === (f.to === undefined)) {
        throw new LifeboatError('USAGE', f.output === undefined ? 'give --output DIR or --to redis://HOST:PORT' : 'give --output or --to, not both', {
          hint: '--output writes dump.rdb into a new directory; --to loads into a running, empty server',
        });
      }
      if (f.force && f.to === undefined) throw new LifeboatError('USAGE', '--force goes with --to', { hint: '--output never replaces anything: give a new directory' });
      if (f.redisPasswordFile !== undefined && f.to === undefined) throw new LifeboatError('USAGE', '--redis-password-file goes with --to', { hint: 'it is the password of the server loaded into' });
      const time = f.time === undefined ? undefined : parseTargetTime(f.time);
      const password = f.to === undefined ? undefined : redisPassword({ passwordFile: f.redisPasswordFile });
      await withRepo(g, async (repo) => {
        const txn = seq === undefined ? undefined : await findTransaction(repo, name, seq, f.generation);
        if (txn && !g.json && !g.quiet) {
          console.log(`${include ? 'up to and including' : 'up to just before'} transaction ${txn.seq} of generation ${txn.generation} (seen ${new Date(txn.time).toISOString()})`);
        }
        const stop = stopSignal();
        try {
          const r = await redisRestore(repo, {
            name,
            ...(f.output !== undefined ? { output: f.output } : {}),
            ...(f.to !== undefined ? { to: f.to, password, force: f.force ?? false } : {}),
            ...(time ? { time } : {}),
            ...(f.snapshot !== undefined ? { snapshot: f.snapshot } : {}),
            ...(txn ? { cut: cutOf(txn, include) } : {}),
            checks: f.check,
            ...(f.redisServer ? { redisServer: f.redisServer } : {}),
            signal: stop.signal,
            onEvent: (e) => {
              if (e.kind === 'warning') cliWarn(e.message);
            },
          });
          render(name, r, g, txn ? { txn, include } : undefined);
        } finally {
          stop.release();
        }
      });
    });
}

export function restoreJson(r: RedisRestoreResult, txn?: { txn: RedisTxn; include: boolean }): Record<string, unknown> {
  return {
    snapshot: r.snapshot.id,
    generation: r.generation ?? null,
    ...(txn ? { txn: txn.txn.seq, txn_included: txn.include } : {}),
    offset: r.offset,
    restored_to: r.restoredTo.toISOString(),
    segments: r.segments,
    stream_bytes: r.streamBytes,
    keys: r.keys,
    bytes: r.bytes,
    output: r.output ?? null,
    to: r.to ?? null,
    loaded: r.loaded ?? null,
    checks: r.checks,
    warnings: r.warnings,
    duration_ms: r.durationMs,
  };
}

function render(name: string, r: RedisRestoreResult, g: GlobalOptions, txn?: { txn: RedisTxn; include: boolean }): void {
  if (g.json) return printJson(restoreJson(r, txn));
  if (g.quiet) return;
  const keys = Object.entries(r.keys).map(([db, n]) => `${db}=${n}`).join(' ') || 'no keys';
  const where = r.output ? `${r.output}/dump.rdb (${formatBytes(r.bytes)})` : `${r.to ?? ''}`;
  console.log(
    `restored ${name} as of ${r.restoredTo.toISOString()} to ${where}: snapshot ${r.snapshot.id.slice(0, 8)}` +
      `${r.segments ? ` + ${formatBytes(r.streamBytes)} of commands (offset ${r.offset})` : ''}; ${keys}; ` +
      `${r.checks.length} checks passed, ${duration(r.durationMs)}`,
  );
}
