/**
 * lifeboat window [SOURCE] — the recoverable window of a source (or, with --group, a
 * consistency group): earliest and latest moment a restore reaches, its backups, log
 * coverage, gaps and the last drill (engine/window.ts). Without a name, the sources
 * the repository holds. The daemon's `GET /api/v1/sources/:name/window` runs it.
 */
import type { Command } from 'commander';
import { groupWindow, resolveWindowSource, sourceWindow, windowSources } from '../../engine/window.js';
import { findConfig, withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import { windowLines } from '../output/window.js';
import { forTerminal } from '../../util/terminal.js';

export function register(program: Command): void {
  program
    .command('window [source]')
    .description('the recoverable window of a source: earliest and latest moment, backups, log coverage, gaps, last drill')
    .option('--group <name>', 'a consistency group instead of a source')
    .option('--kind <kind>', 'the kind of the source, when two kinds share its name (or say kind:name)')
    .action(async (ref: string | undefined, f: { group?: string; kind?: string }, cmd: Command) => {
      const g0 = cmd.optsWithGlobals<GlobalOptions>();
      // Without --repo, the repository lifeboat.yaml gives the group (or the configured source).
      const config = g0.repo ?? process.env.LIFEBOAT_REPOSITORY ? undefined : await findConfig(g0);
      const configured = f.group !== undefined ? config?.groups.get(f.group)?.repository : ref !== undefined ? config?.sources.get(ref)?.repository : undefined;
      const g: GlobalOptions = configured !== undefined ? { ...g0, repo: configured } : g0;
      await withRepo(g, async (repo) => {
        if (f.group !== undefined) {
          const w = await groupWindow(repo, f.group);
          if (g.json) return printJson(w);
          return console.log(windowLines(w).join('\n'));
        }
        if (ref === undefined) {
          const all = await windowSources(repo);
          if (g.json) return printJson(all);
          for (const s of all) console.log(`${forTerminal(`${s.kind}:${s.name}`).padEnd(32)} newest backup ${s.newest}`);
          return;
        }
        const s = f.kind !== undefined ? { kind: f.kind, name: ref } : await resolveWindowSource(repo, ref);
        const w = await sourceWindow(repo, s.kind, s.name);
        if (g.json) return printJson(w);
        console.log(windowLines(w).join('\n'));
      });
    });
}
