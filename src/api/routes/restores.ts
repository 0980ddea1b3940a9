/**
 * Restores and recoveries: always jobs, always into new places below
 * server.restore_roots (daemon/restore-policy.ts), checked before any job starts.
 */
import { isLifeboatError } from '../../errors.js';
import { parseTargetTime } from '../../engine/target-time.js';
import { requireSource } from '../../daemon/jobs.js';
import { checkRestoreTarget, snapshotOfSource } from '../../daemon/restore-policy.js';
import type { ApiContext } from '../context.js';
import { RecoveryBody, RestoreBody } from '../bodies.js';
import { Job, Jobs } from '../dto.js';
import { route, type Route } from '../route.js';
import { newRecoveryId } from './aliases.js';

export function restoreRoutes({ d, source, actor, role }: ApiContext): Route[] {
  return [
    route({
      method: 'POST', url: '/api/v1/restores', role: 'operator',
      summary: 'Restore a source into a new place below server.restore_roots (admin only without them): files to a directory (snapshot), PostgreSQL to a directory and SQLite to a file (time), SQLite and Redis also to a transaction (txn, before_txn, generation); never overwrites',
      body: RestoreBody,
      response: { status: 202, description: 'the job', schema: Job },
      handler: async ({ body: b }, reply, who) => {
        // Refused here, not in the job: a future or zone-less time must not start one.
        if (b.time !== undefined) parseTargetTime(b.time);
        const s = requireSource(d.config, b.source);
        const target = checkRestoreTarget(d.config, role(who), b.target);
        // The snapshot must be this source's: checked against the repository's own listing (shared and
        // cached; read afresh when the cached one does not know it, e.g. a backup the CLI just made).
        const own = async (snap: string) => {
          try {
            return snapshotOfSource(await d.snapshots(s.repository), s, snap);
          } catch (err) {
            if (!isLifeboatError(err, 'NOT_FOUND')) throw err;
            return snapshotOfSource(await d.snapshots(s.repository, { fresh: true }), s, snap);
          }
        };
        const snapshot = b.snapshot === undefined ? undefined : await own(b.snapshot);
        reply.code(202);
        return d.submit({
          kind: 'restore', source: s.name, trigger: 'api', actor: actor(who),
          restore: {
            target,
            ...(b.time ? { time: b.time } : {}),
            ...(snapshot ? { snapshot } : {}),
            ...(b.txn !== undefined ? { txn: b.txn } : {}),
            ...(b.before_txn !== undefined ? { beforeTxn: b.before_txn } : {}),
            ...(b.generation !== undefined ? { generation: b.generation } : {}),
          },
        });
      },
    }),
    route({
      method: 'POST', url: '/api/v1/recoveries', role: 'operator',
      summary: 'Recover several sources to one moment: a restore job per source into new places, all checked before any starts',
      body: RecoveryBody,
      response: { status: 202, description: 'the jobs', schema: Jobs },
      handler: ({ body: b }, reply, who) => {
        if (b.time !== undefined) parseTargetTime(b.time);
        for (const name of Object.keys(b.targets)) source(name);
        const targets = Object.fromEntries(Object.entries(b.targets).map(([name, target]) => [name, checkRestoreTarget(d.config, role(who), target)]));
        reply.code(202);
        return { jobs: d.recover(targets, b.time, 'api', actor(who), newRecoveryId()) };
      },
    }),
  ];
}
