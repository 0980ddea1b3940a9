/**
 * Load and archive helpers for PostgreSQL tests: pgbench against a scratch cluster
 * (as the postgres user, over TCP), and forcing the current WAL segment into the
 * archive so a restore to "latest" sees everything committed so far.
 */
import * as path from 'node:path';
import { asPostgres, PG_BIN, type ScratchCluster } from './pg-cluster.js';

export interface Running {
  /** Resolves when pgbench exits. */
  done: Promise<{ code: number; stdout: string; stderr: string }>;
  running(): boolean;
}

/** Starts pgbench with ARGS against the cluster's postgres database; does not wait. */
export function pgbench(cluster: ScratchCluster, args: string[]): Running {
  let finished = false;
  const done = asPostgres(path.join(PG_BIN, 'pgbench'), ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', ...args, 'postgres']).finally(() => {
    finished = true;
  });
  return { done, running: () => !finished };
}

export interface Load {
  /** True until stop() is called or a run fails. */
  running(): boolean;
  /** Lets the current run finish and resolves to the first failed run, or the last one. */
  stop(): Promise<{ code: number; stdout: string; stderr: string }>;
}

/**
 * pgbench run again and again, SECONDS at a time, until stop(): a load that lasts as
 * long as whatever the test does meanwhile, however slow the machine, where one run of
 * a guessed duration could end too soon on a loaded machine or waste time on an idle one.
 */
export function pgbenchUntilStopped(cluster: ScratchCluster, args: string[], seconds = 2): Load {
  let stopping = false;
  let failed = false;
  const loop = (async () => {
    for (;;) {
      const r = await pgbench(cluster, ['-T', String(seconds), ...args]).done;
      if (r.code !== 0) failed = true;
      if (failed || stopping) return r;
    }
  })();
  return {
    running: () => !stopping && !failed,
    stop: () => {
      stopping = true;
      return loop;
    },
  };
}

/** Switches to a new WAL segment and waits until the one just closed is archived. */
export async function switchAndArchive(cluster: ScratchCluster): Promise<void> {
  const [r] = await cluster.query<{ name: string }>('select pg_walfile_name(pg_switch_wal()) as name');
  const until = Date.now() + 60_000;
  for (;;) {
    const [a] = await cluster.query<{ last: string | null; failed: number }>('select last_archived_wal as last, failed_count as failed from pg_stat_archiver');
    if (a?.last && a.last >= r!.name) return;
    if (Date.now() > until) throw new Error(`WAL ${r!.name} was not archived (failed ${a?.failed}):\n${(await cluster.log()).slice(-2000)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}
