/**
 * A PostgreSQL drill: the latest base backup is restored into a scratch cluster,
 * WAL replayed and the source's checks run (pg verify); RPO is measured against the
 * source server's WAL position when the drill is given its DSN. The generic part —
 * scratch space, timing, recording — is engine/drill/drill.ts.
 */
import { connect } from './connect.js';
import { formatLsn, parseLsn } from './wal.js';
import { pgVerify } from './verify.js';
import type { DrillRecord } from '../../engine/drill/drill.js';
import type { Repository } from '../../repo/repository.js';
import type { DrillContext } from '../source.js';

export async function drillPostgres(repo: Repository, name: string, { opts, record }: DrillContext): Promise<void> {
  const before = opts.sourceDsn ? await sourcePosition(opts.sourceDsn, record) : undefined;
  const r = await pgVerify(repo, { name, target: { kind: 'latest' }, archiveGetCommand: opts.lifeboat(['pg', 'archive-get', '--name', name]), ...(opts.checks ? { queries: [...opts.checks] } : {}) });
  record.snapshot = r.snapshot;
  record.rto_seconds = r.rto_seconds;
  record.checks.push(...r.checks);
  if (r.graph) record.graph = r.graph;
  // The newest recovered data is the last transaction replayed; without one (no WAL
  // after the base backup), the base backup's end.
  const snap = (await repo.listSnapshots()).find((s) => s.id === r.snapshot);
  const newest = r.last_transaction ? Date.parse(r.last_transaction) : snap ? Date.parse(snap.time) : undefined;
  record.rpo_seconds = newest === undefined ? null : (Date.now() - newest) / 1000;
  record.rpo_basis = r.last_transaction ? 'last-transaction' : 'backup';
  // An idle source's newest transaction may be hours old with nothing missing: what
  // counts is whether the restore reached where the server was when the drill began.
  if (before && r.replayed_lsn && parseLsn(r.replayed_lsn) >= before) {
    record.rpo_seconds = 0;
    record.rpo_basis = 'source-position';
    record.checks.push({ name: 'rpo', ok: true, detail: `replayed to ${r.replayed_lsn}, past the source's ${formatLsn(before)} at the start: nothing committed before the drill is missing` });
  } else if (before && r.replayed_lsn) {
    record.checks.push({ name: 'rpo', ok: true, detail: `replayed to ${r.replayed_lsn}, short of the source's ${formatLsn(before)} at the start: RPO counted from the newest transaction replayed` });
  }
}

/** The source server's WAL position, read after the drill began; undefined (and a note) when it cannot be reached. */
async function sourcePosition(dsn: string, record: DrillRecord): Promise<bigint | undefined> {
  try {
    const client = await connect(dsn);
    try {
      const r = await client.query<{ lsn: string | null }>('select (case when pg_is_in_recovery() then pg_last_wal_receive_lsn() else pg_current_wal_lsn() end)::text as lsn');
      return r.rows[0]?.lsn ? parseLsn(r.rows[0].lsn) : undefined;
    } finally {
      await client.end().catch(() => {});
    }
  } catch (err) {
    record.checks.push({ name: 'rpo', ok: true, detail: `the source server could not be asked for its WAL position (${(err as Error).message}); RPO counted from the newest transaction replayed` });
    return undefined;
  }
}
