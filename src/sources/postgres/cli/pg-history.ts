/**
 * lifeboat pg history NAME --around T — the transactions in the archived WAL near a
 * moment (xid, commit time, relations written and how), read by pg_waldump, so the
 * operator can pick one for `pg restore --xid` (recovery_target_xid: up to and
 * including that transaction).
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../../../errors.js';
import { parseTargetTime } from '../../../engine/target-time.js';
import { withRepo, type GlobalOptions } from '../../../cli/context.js';
import { printJson } from '../../../cli/output/render.js';
import { connect } from '../connect.js';
import { MAX_PG_AROUND, nameRelations, pgTransactionsAround, type PgTxn } from '../wal-history.js';

interface Flags {
  around: string;
  limit: string;
  timeline?: string;
  dsn?: string;
  binDir?: string;
}

/** Where pg_waldump is: --bin-dir, else the PATH, else the newest /usr/lib/postgresql/N/bin (Debian keeps it there). */
function waldumpDir(given: string | undefined): string {
  if (given) return given;
  for (const d of (process.env.PATH ?? '').split(':')) if (d && existsSync(path.join(d, 'pg_waldump'))) return d;
  for (let v = 30; v >= 10; v--) {
    const d = `/usr/lib/postgresql/${v}/bin`;
    if (existsSync(path.join(d, 'pg_waldump'))) return d;
  }
  throw new LifeboatError('USAGE', 'pg_waldump was not found', { hint: 'give --bin-dir, the directory of the PostgreSQL programs' });
}

function relText(r: PgTxn['relations'][number]): string {
  const ops = Object.entries(r.ops)
    .filter(([op]) => !op.includes(':'))
    .map(([op, n]) => `${op} ${n}`)
    .join(', ');
  return `${r.name ?? `rel ${r.rel}`}${ops ? ` (${ops})` : ''}`;
}

export function register(pg: Command): void {
  pg.command('history <name>')
    .description('the transactions in the archived WAL near a moment: xid, commit time, relations written (to pick one for restore --xid)')
    .requiredOption('--around <rfc3339>', 'the moment, e.g. 2026-11-21T14:30:05Z')
    .option('--limit <n>', `how many transactions (at most ${MAX_PG_AROUND})`, '20')
    .option('--timeline <n>', 'read this timeline (default: the newest archived)')
    .option('--dsn <url>', 'a connection to the live cluster, to name relations by their relfilenode (else they are shown as tablespace/database/relfilenode)')
    .option('--bin-dir <dir>', 'directory holding pg_waldump')
    .action(async (name: string, f: Flags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const around = parseTargetTime(f.around);
      const limit = Number(f.limit);
      if (!/^[0-9]+$/.test(f.limit) || limit < 1 || limit > MAX_PG_AROUND) throw new LifeboatError('USAGE', `--limit must be a whole number from 1 to ${MAX_PG_AROUND}`);
      const timeline = f.timeline === undefined ? undefined : Number(f.timeline);
      if (timeline !== undefined && !(Number.isInteger(timeline) && timeline >= 1)) throw new LifeboatError('USAGE', '--timeline takes a timeline number (1, 2, ...)');
      const binDir = waldumpDir(f.binDir);
      await withRepo(g, async (repo) => {
        const r = await pgTransactionsAround(repo, name, { around, limit, binDir, ...(timeline ? { timeline } : {}) });
        if (f.dsn) {
          const client = await connect(f.dsn);
          try {
            await nameRelations(r.txns, async (sql) => (await client.query(sql)).rows as Array<Record<string, unknown>>);
          } finally {
            await client.end();
          }
        }
        if (g.json) {
          return printJson({
            name,
            timeline: r.timeline,
            around: around.toISOString(),
            segments: r.segments,
            time_source: 'PostgreSQL commit records (the server clock)',
            transactions: r.txns.map((t) => ({ xid: t.xid, time: t.time, lsn: t.lsn, outcome: t.outcome, relations: t.relations.map((x) => ({ rel: x.rel, name: x.name ?? null, ops: x.ops })) })),
          });
        }
        console.log(`timeline ${r.timeline} of ${name}: ${r.txns.length} transactions near ${around.toISOString()} (WAL ${r.segments[0] ?? ''}…${r.segments.at(-1) ?? ''}; times from the commit records)`);
        for (const t of r.txns) {
          const rels = t.relations.map(relText).join('; ');
          console.log(`${String(t.xid).padStart(10)}  ${t.time}  ${t.outcome === 'abort' ? 'ABORT ' : ''}${rels || '(no relation written)'}`);
        }
        console.log(`\nrestore up to one (included): lifeboat pg restore --name ${name} --xid XID --target-dir DIR`);
      });
    });
}
