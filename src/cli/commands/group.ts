/**
 * lifeboat group backup | points | restore | drill — consistency groups (docs/groups.md):
 * several sources' positions recorded while one freeze command holds writes, proven to
 * be in each member's own archive and stored as one point; every member restored to one
 * such point; and drilled: restored into scratch, checked alone and together, one RTO.
 */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { findConfig, withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import type { LifeboatConfig } from '../../config/config.js';
import type { MemberPosition } from '../../engine/group/members.js';
import type { GroupRestorePlan } from '../../engine/group/restore.js';
import { collect, parseDuration } from './options.js';
import { parseTargetTime } from '../../engine/target-time.js';
import { selfCommand } from '../self-command.js';

async function groupConfig(g: GlobalOptions, name: string): Promise<{ config: LifeboatConfig; repo: GlobalOptions }> {
  const config = await findConfig(g);
  if (!config) throw new LifeboatError('USAGE', 'group commands need lifeboat.yaml, where groups are declared', { hint: 'give --config FILE (or LIFEBOAT_CONFIG), with a groups: section' });
  const { findGroup } = await import('../../engine/group/capture.js');
  const group = findGroup(config, name);
  // The members' repository, unless --repo / LIFEBOAT_REPOSITORY names one.
  return { config, repo: { ...g, repo: g.repo ?? process.env.LIFEBOAT_REPOSITORY ?? group.repository } };
}

function describe(p: MemberPosition): string {
  if (p.kind === 'postgres') return `restore point ${p.restore_point} at ${p.lsn}`;
  if (p.kind === 'sqlite') return `WAL frame ${p.frame} of cycle ${p.salt1.toString(16)}/${p.salt2.toString(16)}`;
  if (p.kind === 'redis') return `replication offset ${p.offset}`;
  if (p.kind === 'files') {
    return p.method === 'frozen-copy'
      ? `snapshot ${p.snapshot.slice(0, 8)}, copied while frozen (${(p.copy_ms ?? 0).toFixed(1)} ms of the hold: the hold grows with the data)`
      : `snapshot ${p.snapshot.slice(0, 8)} from a filesystem snapshot made while frozen (${(p.create_ms ?? 0).toFixed(1)} ms), copied after thaw`;
  }
  return `snapshot ${p.snapshot.slice(0, 8)} of the ${p.objects} objects listed while frozen (${p.listing_ms.toFixed(1)} ms), copied after thaw`;
}

function printPlan(plan: GroupRestorePlan, dryRun: boolean): void {
  console.log(`${dryRun ? 'plan (dry run: nothing is changed)' : 'plan'}: group ${plan.group} to point ${plan.point.id} of ${plan.point.time} (${plan.chosen})`);
  for (const m of plan.members) {
    console.log(`  ${m.name} (${m.kind}): ${m.at} -> ${m.target}`);
    const archive = m.archived ? m.archived.reach : ['postgres', 'sqlite', 'redis'].includes(m.kind) ? `not proven at capture; now ${m.reach}` : 'its snapshot';
    console.log(`      ${m.mechanism}, from ${m.base}; archive: ${archive}`);
  }
  for (const n of plan.notes) console.log(`note: ${n}`);
}

export function register(program: Command): void {
  const group = program.command('group').description('consistency groups: several sources captured at one moment (docs/groups.md)');

  group
    .command('backup <name>')
    .description("run the group's freeze command, record every member's position, always run thaw, wait until each member's archive holds its position, and store the point")
    .option('--wait <duration>', "how long to wait after thaw for every member's archive to reach its position", '60s')
    .action(async (name: string, f: { wait: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const waitMs = parseDuration(f.wait, '--wait', { zero: true });
      const { config, repo } = await groupConfig(g, name);
      const { groupBackup } = await import('../../engine/group/capture.js');
      // A point that cannot be stored is worth nothing: the repository opens (and its
      // password is checked) first, and only then are writes held.
      await withRepo(repo, async (r) => {
        const p = await groupBackup(r, config, name, { waitMs, onEvent: (e) => process.stderr.write(`warning: ${e.message}\n`) });
        if (g.json) return printJson(p);
        if (g.quiet) return console.log(p.id);
        console.log(`point ${p.id} of group ${name}: writes held ${p.hold_ms.toFixed(1)} ms (max_hold ${p.max_hold_ms} ms)${p.frozen ? '' : ' (no freeze command: positions read back to back)'}`);
        for (const m of p.members) console.log(`  ${m.name} (${m.kind}): ${describe(m.position)}${m.archived ? `; archived: ${m.archived.reach}` : ''}`);
      });
    });

  group
    .command('restore <name>')
    .description('restore every member to one point, each with its own mechanism, into new or empty target directories (the plan is printed first)')
    .option('--point <id>', 'the point (`group points NAME` lists them)')
    .option('--time <rfc3339>', 'the newest point at or before this moment')
    .option('--target <member=dir>', 'where a member goes (repeatable; every member needs one)', collect, [])
    .option('--dry-run', 'print the plan and change nothing')
    .action(async (name: string, f: { point?: string; time?: string; target: string[]; dryRun?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const time = f.time === undefined ? undefined : parseTargetTime(f.time);
      const targets = new Map<string, string>();
      for (const t of f.target) {
        const eq = t.indexOf('=');
        if (eq <= 0 || eq === t.length - 1) throw new LifeboatError('USAGE', `--target ${t}: expected MEMBER=DIR`, { hint: 'e.g. --target warm=/srv/restore/warm' });
        const member = t.slice(0, eq);
        if (targets.has(member)) throw new LifeboatError('USAGE', `--target names member "${member}" twice`, { hint: 'one target per member' });
        targets.set(member, t.slice(eq + 1));
      }
      const { config, repo } = await groupConfig(g, name);
      const { groupRestore } = await import('../../engine/group/restore.js');
      // PostgreSQL members' restore_command runs this CLI (it needs a password file then).
      const self = f.dryRun ? undefined : await selfCommand(repo, 'group restore');
      await withRepo(repo, async (r) => {
        const result = await groupRestore(r, config, name, {
          ...(f.point !== undefined ? { point: f.point } : {}),
          ...(time ? { time } : {}),
          targets,
          ...(f.dryRun ? { dryRun: true } : {}),
          ...(self ? { lifeboat: self } : {}),
          onEvent: (e) => {
            if (e.type === 'warning') process.stderr.write(`warning: ${e.message}\n`);
            else if (g.json || g.quiet) return;
            else if (e.type === 'plan') printPlan(e.plan, f.dryRun ?? false);
            else if (e.type === 'member-start') process.stderr.write(`restoring ${e.name} (${e.kind}) into ${e.target}…\n`);
            else console.log(`  ${e.name}: ${e.detail} (${(e.elapsedMs / 1000).toFixed(1)} s)`);
          },
        });
        if (g.json) {
          const { plan } = result;
          return printJson({
            group: plan.group,
            point: plan.point.id,
            time: plan.point.time,
            chosen: plan.chosen,
            dry_run: result.dryRun,
            plan: plan.members.map((m) => ({ member: m.name, kind: m.kind, mechanism: m.mechanism, position: m.position, target: m.target, base: m.base, archived: m.archived, reach: m.reach })),
            notes: plan.notes,
            members: result.members.map((m) => ({ member: m.name, kind: m.kind, target: m.target, elapsed_ms: m.elapsedMs, detail: m.detail })),
            elapsed_ms: result.elapsedMs,
          });
        }
        if (g.quiet || result.dryRun) return;
        console.log(`all ${result.members.length} members of group ${name} restored to point ${result.plan.point.id} in ${(result.elapsedMs / 1000).toFixed(1)} s`);
      });
    });

  group
    .command('drill <name>')
    .description("restore every member into scratch at one point, run each member's checks and the group's cross-member checks, record one RTO")
    .option('--point <id>', 'the point to drill (`group points NAME` lists them)', undefined)
    .option('--time <rfc3339>', 'drill the newest point not after this moment, e.g. 2026-11-21T14:30:05Z')
    .action(async (name: string, f: { point?: string; time?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (f.point !== undefined && f.time !== undefined) throw new LifeboatError('USAGE', 'give --point or --time, not both', { hint: 'without either, the newest point is drilled' });
      const time = f.time === undefined ? undefined : parseTargetTime(f.time);
      const { config, repo } = await groupConfig(g, name);
      const { groupDrill } = await import('../../engine/group/drill.js');
      const { abortStarts } = await import('../../sources/postgres/start.js');
      const { stopSignal } = await import('../stop-signal.js');
      const stop = stopSignal();
      // A PostgreSQL scratch server is stopped at once: the drill then unwinds and cleans up.
      stop.signal.addEventListener('abort', () => void abortStarts());
      const lifeboat = await selfCommand(repo, 'group drill');
      try {
        await withRepo(repo, async (r) => {
          const d = await groupDrill(r, config, name, {
            lifeboat,
            ...(f.point !== undefined ? { point: f.point } : {}),
            ...(time ? { time } : {}),
            signal: stop.signal,
            onEvent: (e) => {
              if (e.type === 'warning') process.stderr.write(`warning: ${e.message}\n`);
            },
          });
          if (stop.signal.aborted) throw new LifeboatError('INTERRUPTED', `group drill of ${name} interrupted; its scratch servers were stopped and nothing was recorded`, { hint: 'run it again' });
          if (g.json) printJson(d);
          else if (!g.quiet) {
            const rto = d.rto_ms === null ? '—' : `${(d.rto_ms / 1000).toFixed(1)} s`;
            console.log(`${d.ok ? 'ok    ' : 'FAILED'}  group ${name}  point ${d.point ?? '—'}  RTO ${rto}  RPO ${d.rpo_seconds === null ? '—' : `${d.rpo_seconds.toFixed(1)} s`}`);
            for (const m of d.members) {
              console.log(`  ${m.ok ? '✓' : '✗'} ${m.name} (${m.kind})`);
              for (const c of m.checks) console.log(`      ${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`);
            }
            for (const c of d.checks) console.log(`  ${c.ok ? '✓' : '✗'} check ${c.name}: ${c.detail}`);
          }
          if (!d.ok) {
            throw new LifeboatError('FAILED', `group drill of ${name} failed: ${d.error ?? 'a check failed'}`, {
              hint: d.members.every((m) => m.ok) ? 'the members restored to one point disagree: see the cross-member checks' : 'the group cannot be trusted to restore; see the failed member above',
            });
          }
        });
      } finally {
        stop.release();
      }
    });

  group
    .command('points <name>')
    .description("the group's stored points, newest first")
    .action(async (name: string, _f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { repo } = await groupConfig(g, name);
      const { groupPoints } = await import('../../engine/group/capture.js');
      await withRepo(repo, async (r) => {
        const { points, unreadable } = await groupPoints(r, name);
        for (const id of unreadable) process.stderr.write(`warning: point ${id} of group ${name} is unreadable (damaged?)\n`);
        if (g.json) return printJson({ group: name, points, unreadable });
        if (points.length === 0) return console.log(`no points of group ${name}`);
        for (const p of points) console.log(`${p.id}  ${p.time}  held ${p.hold_ms.toFixed(1)} ms  ${p.members.map((m) => m.name).join(', ')}`);
      });
    });
}
