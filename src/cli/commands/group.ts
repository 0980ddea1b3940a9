/**
 * lifeboat group backup | points — consistency groups (docs/groups.md): several sources'
 * positions recorded while one freeze command holds writes, stored as one point.
 */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { findConfig, withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import type { LifeboatConfig } from '../../config/config.js';
import type { MemberPosition } from '../../engine/group/members.js';

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

export function register(program: Command): void {
  const group = program.command('group').description('consistency groups: several sources captured at one moment (docs/groups.md)');

  group
    .command('backup <name>')
    .description("run the group's freeze command, record every member's position, always run thaw, and store the point")
    .action(async (name: string, _f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { config, repo } = await groupConfig(g, name);
      const { groupBackup } = await import('../../engine/group/capture.js');
      // A point that cannot be stored is worth nothing: the repository opens (and its
      // password is checked) first, and only then are writes held.
      await withRepo(repo, async (r) => {
        const p = await groupBackup(r, config, name, { onEvent: (e) => process.stderr.write(`warning: ${e.message}\n`) });
        if (g.json) return printJson(p);
        if (g.quiet) return console.log(p.id);
        console.log(`point ${p.id} of group ${name}: writes held ${p.hold_ms.toFixed(1)} ms (max_hold ${p.max_hold_ms} ms)${p.frozen ? '' : ' (no freeze command: positions read back to back)'}`);
        for (const m of p.members) console.log(`  ${m.name} (${m.kind}): ${describe(m.position)}`);
      });
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
