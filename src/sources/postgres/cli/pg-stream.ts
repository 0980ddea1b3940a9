/** lifeboat pg stream: ships WAL continuously until SIGINT/SIGTERM; --json prints its events, `status` among them (docs/daemon.md). */
import type { Command } from 'commander';
import { pgStream } from '../stream.js';
import { withRepo, type GlobalOptions } from '../../../cli/context.js';
import { flagOf, parseDuration } from '../../../cli/commands/options.js';
import { postgresOptions } from '../options.js';
import { stopSignal } from '../../../cli/stop-signal.js';

export function register(pg: Command): void {
  pg.command('stream')
    .description('stream WAL over a replication slot into the repository (about a second of data at risk)')
    .requiredOption('--name <name>', 'cluster name')
    .addOption(flagOf(postgresOptions().shape.dsn, { arg: '<url>', required: true, description: 'connection string of a role with REPLICATION' }))
    .option('--slot <name>', 'replication slot (default lifeboat_<name>; created if missing)')
    .option('--spool <dir>', 'local directory pg_receivewal writes to')
    .option('--interval <duration>', 'how often to ship WAL', '1s')
    .addOption(flagOf(postgresOptions().shape.bin_dir, { arg: '<dir>', description: 'directory holding pg_receivewal' }))
    .action(async (f: { name: string; dsn: string; slot?: string; spool?: string; interval: string; binDir?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const stop = stopSignal();
        let lastHealthy: boolean | undefined;
        await pgStream(repo, {
          name: f.name,
          dsn: f.dsn,
          intervalMs: parseDuration(f.interval, '--interval'),
          signal: stop.signal,
          ...(f.slot ? { slot: f.slot } : {}),
          ...(f.spool ? { spool: f.spool } : {}),
          ...(f.binDir ? { binDir: f.binDir } : {}),
          onEvent: (e) => {
            if (g.json) {
              // Status events are the daemon's signal: printed even with --quiet.
              if (!g.quiet || e.kind === 'status') process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
              return;
            }
            if (e.kind === 'status') {
              // A line when health changes, not every few seconds.
              const line = e.healthy ? `streaming; archived through ${e.archivedThrough ?? 'nothing yet'}` : `not archiving: ${e.error ?? 'unknown'}${e.hint ? ` (${e.hint})` : ''}`;
              if (e.healthy !== lastHealthy && !(g.quiet && e.healthy)) (e.healthy ? console.log : console.error)(line);
              lastHealthy = e.healthy;
              return;
            }
            if (g.quiet) return;
            if (e.kind === 'segment') console.log(`shipped ${e.file}`);
            else if (e.kind === 'takeover') console.log(e.detail);
            else if (e.kind === 'foreign') console.error(`set aside ${e.file}: ${e.detail}`);
            else if (e.kind === 'receiver-exit') console.error(`pg_receivewal exited (${e.code}): ${e.stderr.split('\n').pop() ?? ''}; restarting in ${e.restartInMs} ms`);
          },
        });
      });
    });
}
