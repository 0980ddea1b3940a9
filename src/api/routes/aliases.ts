/**
 * The recovery API users of Summit's DR service know (issue 18), as aliases of
 * Lifeboat's own calls: each one is planned, checked and run exactly as the call it
 * stands for (docs/daemon.md, "Summit aliases"), with the same role. What Lifeboat
 * cannot mean by a field is refused with a hint rather than guessed.
 *
 * Summit's calls name no restore target; Lifeboat never restores over live data, so
 * the aliases restore into a new place below the first of `server.restore_roots`,
 * named after the recovery and the source, and the answer says where.
 */
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import type { SourceConfig } from '../../config/config.js';
import { parseTargetTime } from '../../engine/target-time.js';
import type { JobRequest } from '../../daemon/jobs.js';
import { checkRestoreTarget, snapshotOfSource } from '../../daemon/restore-policy.js';
import type { Role } from '../../daemon/auth.js';
import type { JobRow } from '../../daemon/catalog.js';
import type { ApiContext } from '../context.js';
import { AliasAnswer, DrillsRunBody, RecoveryFullBody, RecoveryNeo4jBody, RecoveryPostgresBody, RecoveryStatus } from '../dto.js';
import { route, type Route } from '../route.js';

/** `r20261203T093000Z-1a2b`: sorts by time, and says when it was asked for. */
export function newRecoveryId(now = new Date()): string {
  return `r${now.toISOString().replace(/[-:]|\.\d+/g, '')}-${randomBytes(2).toString('hex')}`;
}

/** One source's part of a recovery; members of a group carry the group and the point they come back to. */
type Plan = { source: string; kind: string; target: string; time: string | null; snapshot: string | null; group?: string; point?: string };
const planOf = (d: ApiContext['d'], reqs: JobRequest[]): Plan[] =>
  reqs.map((r) => ({
    source: r.source as string,
    kind: d.config.sources.get(r.source as string)?.kind ?? '',
    target: r.restore?.target ?? '',
    time: r.restore?.time ?? null,
    snapshot: r.restore?.snapshot ?? null,
  }));

export function aliasRoutes({ d, actor, role }: ApiContext): Route[] {
  /** Where an alias restores source S: a new place below the first restore root, checked like any API target. */
  const targetFor = (who: Role, recovery: string, s: SourceConfig): string => {
    const root = d.config.server.restoreRoots[0];
    if (root === undefined) {
      throw new LifeboatError('RESTORE_NOT_ALLOWED', 'the recovery aliases restore into a new place below server.restore_roots, and none is set', {
        hint: `set server.restore_roots in ${d.config.file}, or call POST /api/v1/recoveries with your own targets (admin)`,
      });
    }
    return checkRestoreTarget(d.config, who, path.join(root, `${recovery}-${s.name}`));
  };
  const time = (t: string | undefined): string | undefined => {
    // Refused here, not in a job: a future or zone-less time must not start one.
    if (t !== undefined) parseTargetTime(t);
    return t;
  };
  const answer = (aliasOf: string, recovery: string | null, dryRun: boolean, plan: Plan[], jobs: JobRow[], notes: string[] = []) => ({
    alias_of: aliasOf,
    recovery,
    dry_run: dryRun,
    plan,
    jobs,
    notes,
  });
  const only = (kind: string, preferred: string): SourceConfig => {
    const named = d.config.sources.get(preferred);
    if (named) return named;
    const of = [...d.config.sources.values()].filter((s) => s.kind === kind);
    if (of.length === 1) return of[0] as SourceConfig;
    if (of.length === 0) {
      throw new LifeboatError('NOT_FOUND', `no source named "${preferred}" and no ${kind} source in ${d.config.file}`, {
        hint: `sources: ${[...d.config.sources.keys()].join(', ') || 'none'}; POST /api/v1/restores restores any of them`,
      });
    }
    throw new LifeboatError('USAGE', `several ${kind} sources (${of.map((s) => s.name).join(', ')}) and none named "${preferred}": this alias cannot choose`, {
      hint: `name the one it means "${preferred}", or call POST /api/v1/restores {source, target, time}`,
    });
  };

  return [
    route({
      method: 'POST', url: '/api/v1/recovery/full', role: 'operator',
      summary: 'Summit alias of POST /api/v1/recoveries and POST /api/v1/groups/NAME/restore: every group to its newest point at or before targetTime (or to the point backupId), every other source to that moment, each into a new place below the first restore root',
      body: RecoveryFullBody,
      response: { status: 202, description: 'the plan and the jobs (none on a dry run)', schema: AliasAnswer },
      handler: async ({ body: b }, reply, who) => {
        let at = time(b.targetTime);
        // backupId names a group's point: that group comes back to it, everything else to its moment.
        let chosen: { group: string; point: string } | undefined;
        if (b.backupId !== undefined) {
          const hits = [...d.config.groups.keys()].flatMap((g) => d.catalog.groupPoints(g).filter((p) => p.id === b.backupId || p.id.startsWith(b.backupId as string)));
          if (hits.length !== 1) {
            throw new LifeboatError('USAGE', `backupId "${b.backupId}" ${hits.length === 0 ? 'is no point of a group' : `matches ${hits.length} points`}: a full recovery brings every source back to one moment, a group's point or targetTime`, {
              hint: 'give a point id from GET /api/v1/groups/NAME/points, or leave backupId out and give targetTime; to restore one snapshot of one source, POST /api/v1/restores {source, target, snapshot}',
            });
          }
          const p = hits[0] as (typeof hits)[number];
          chosen = { group: p.group, point: p.id };
          at = p.time;
        }
        const recovery = newRecoveryId();
        // A source in two groups would be restored twice, to two points.
        const owner = new Map<string, string>();
        for (const g of d.config.groups.values()) {
          for (const m of g.members) {
            const other = owner.get(m);
            if (other !== undefined) throw new LifeboatError('USAGE', `source "${m}" is a member of groups ${other} and ${g.name}: a full recovery cannot bring it back to both points`, { hint: 'restore the groups one by one: POST /api/v1/groups/NAME/restore' });
            owner.set(m, g.name);
          }
        }
        const targets = Object.fromEntries([...d.config.sources.values()].filter((s) => !owner.has(s.name)).map((s) => [s.name, targetFor(role(who), recovery, s)]));
        const reqs = Object.keys(targets).length > 0 ? d.planRecovery(targets, at, 'api', actor(who), recovery) : [];
        // Each group: its point, planned whole (a child runs `group restore --dry-run`) before anything starts.
        const groupReqs: JobRequest[] = [];
        const groupPlan: Plan[] = [];
        for (const g of d.config.groups.values()) {
          const gTargets = Object.fromEntries(g.members.map((m) => [m, targetFor(role(who), recovery, d.config.sources.get(m) as SourceConfig)]));
          const p = chosen?.group === g.name ? { point: chosen.point, targets: gTargets } : { ...(at !== undefined ? { time: at } : {}), targets: gTargets };
          const req: JobRequest = { kind: 'group-restore', group: g.name, trigger: 'api', actor: actor(who), groupRestore: p, recovery };
          d.checkStartable(req);
          const plan = (await d.planGroupRestore(g.name, p)) as { point: string; plan: Array<{ member: string; kind: string; target: string }> };
          for (const m of plan.plan) groupPlan.push({ source: m.member, kind: m.kind, target: m.target, time: null, snapshot: null, group: g.name, point: plan.point });
          groupReqs.push(req);
        }
        const dry = b.dryRun === true;
        reply.code(dry ? 200 : 202);
        const aliasOf = d.config.groups.size > 0 ? 'POST /api/v1/groups/NAME/restore and POST /api/v1/recoveries' : 'POST /api/v1/recoveries';
        return answer(aliasOf, recovery, dry, [...groupPlan, ...planOf(d, reqs)], dry ? [] : [...groupReqs, ...reqs].map((r) => d.submit(r)));
      },
    }),
    route({
      method: 'POST', url: '/api/v1/recovery/postgres', role: 'operator',
      summary: 'Summit alias of POST /api/v1/restores for the PostgreSQL source: point-in-time recovery to targetTime into a new data directory below the first restore root',
      body: RecoveryPostgresBody,
      response: { status: 202, description: 'the plan and the job (none on a dry run)', schema: AliasAnswer },
      handler: ({ body: b }, reply, who) => {
        const s = only('postgres', 'postgres');
        if (s.kind !== 'postgres') throw new LifeboatError('USAGE', `source "postgres" is a ${s.kind} source`, { hint: 'POST /api/v1/restores restores it' });
        const at = time(b.targetTime);
        const recovery = newRecoveryId();
        const reqs = d.planRecovery({ [s.name]: targetFor(role(who), recovery, s) }, at, 'api', actor(who), recovery);
        const dry = b.dryRun === true;
        reply.code(dry ? 200 : 202);
        return answer('POST /api/v1/restores', recovery, dry, planOf(d, reqs), dry ? [] : reqs.map((r) => d.submit(r)));
      },
    }),
    route({
      method: 'POST', url: '/api/v1/recovery/neo4j', role: 'operator',
      summary: 'Summit alias of POST /api/v1/restores for the Neo4j dump source (the source named neo4j, else the only command source): the dump of backupId written to a new file below the first restore root',
      body: RecoveryNeo4jBody,
      response: { status: 202, description: 'the plan and the job (none on a dry run)', schema: AliasAnswer },
      handler: async ({ body: b }, reply, who) => {
        const s = only('command', 'neo4j');
        const recovery = newRecoveryId();
        const target = targetFor(role(who), recovery, s);
        // A backupId is a snapshot of this source (an id prefix, or "latest"), checked against the repository's own listing.
        const wanted = b.backupId ?? 'latest';
        let snapshot: string;
        try {
          snapshot = snapshotOfSource(await d.snapshots(s.repository), s, wanted);
        } catch (err) {
          if (!isLifeboatError(err, 'NOT_FOUND')) throw err;
          snapshot = snapshotOfSource(await d.snapshots(s.repository, { fresh: true }), s, wanted);
        }
        const req: JobRequest = { kind: 'restore', source: s.name, trigger: 'api', actor: actor(who), restore: { target, snapshot }, recovery };
        d.checkStartable(req);
        const notes = [
          `each snapshot of ${s.name} is a complete dump (stored deduplicated): there is no chain of incrementals to apply, so includeIncrementals=${String(b.includeIncrementals ?? false)} changes nothing`,
          `the dump is written to ${target}; load it into Neo4j yourself (neo4j-admin database load --from-stdin < ${target})`,
        ];
        const dry = b.dryRun === true;
        reply.code(dry ? 200 : 202);
        return answer('POST /api/v1/restores', recovery, dry, planOf(d, [req]), dry ? [] : [d.submit(req)], notes);
      },
    }),
    route({
      method: 'POST', url: '/api/v1/drills/run', role: 'operator',
      summary: 'Summit alias of POST /api/v1/drills: scenario "backup-validation" (or "all") drills every source, a source name drills that source, a group name drills the group (POST /api/v1/groups/NAME/drill)',
      body: DrillsRunBody,
      response: { status: 202, description: 'the drills and their jobs (none on a dry run)', schema: AliasAnswer },
      handler: ({ body: b }, reply, who) => {
        const all = b.scenario === 'backup-validation' || b.scenario === 'all';
        const s = all ? undefined : d.config.sources.get(b.scenario);
        const g = all || s ? undefined : d.config.groups.get(b.scenario);
        if (g) {
          // A group's drill: every member at one point, one RTO (a source and a group may not share a name: sources win).
          const req: JobRequest = { kind: 'group-drill', group: g.name, trigger: 'api', actor: actor(who) };
          d.checkStartable(req);
          const dry = b.dryRun === true;
          reply.code(dry ? 200 : 202);
          const plan = g.members.map((m) => ({ source: m, kind: d.config.sources.get(m)?.kind ?? '', target: '', time: null, snapshot: null, group: g.name }));
          return answer(`POST /api/v1/groups/${g.name}/drill`, null, dry, plan, dry ? [] : [d.submit(req)]);
        }
        if (!all && !s) {
          throw new LifeboatError('NOT_FOUND', `no drill scenario "${b.scenario}"`, {
            hint: `scenarios: backup-validation (every source), all, a source name (${[...d.config.sources.keys()].join(', ')})${d.config.groups.size > 0 ? ` or a group name (${[...d.config.groups.keys()].join(', ')})` : ''}`,
          });
        }
        const names = s ? [s.name] : [...d.config.sources.keys()];
        const reqs: JobRequest[] = names.map((source) => ({ kind: 'drill', source, trigger: 'api', actor: actor(who) }));
        for (const r of reqs) d.checkStartable(r);
        const dry = b.dryRun === true;
        reply.code(dry ? 200 : 202);
        const plan = names.map((source) => ({ source, kind: d.config.sources.get(source)?.kind ?? '', target: '', time: null, snapshot: null }));
        return answer('POST /api/v1/drills', null, dry, plan, dry ? [] : reqs.map((r) => d.submit(r)));
      },
    }),
    route({
      method: 'GET', url: '/api/v1/recovery/status', role: 'viewer',
      summary: 'Summit alias: the newest recovery (POST /recoveries or a recovery alias) and its restore jobs; state idle when there was none',
      response: { status: 200, description: 'the newest recovery', schema: RecoveryStatus },
      handler: () => {
        const restores = [...d.catalog.jobs({ kind: 'restore', limit: 1000 }), ...d.catalog.jobs({ kind: 'group-restore', limit: 1000 })].sort((a, b) => b.created_at.localeCompare(a.created_at));
        const newest = restores.find((j) => typeof j.params.recovery === 'string');
        if (!newest) return { state: 'idle' as const, recovery: null, started_at: null, finished_at: null, jobs: [] };
        const jobs = restores.filter((j) => j.params.recovery === newest.params.recovery).reverse();
        const running = jobs.some((j) => j.status === 'running' || j.status === 'queued');
        const failed = jobs.some((j) => j.status === 'failed');
        const finished = jobs.map((j) => j.finished_at).filter((f): f is string => f !== null).sort();
        return {
          state: running ? ('running' as const) : failed ? ('failed' as const) : ('succeeded' as const),
          recovery: newest.params.recovery as string,
          started_at: jobs[0]?.created_at ?? null,
          finished_at: running ? null : (finished.at(-1) ?? null),
          jobs,
        };
      },
    }),
  ];
}
