/**
 * lifeboat snapshots: lists snapshots, oldest first. A snapshot dated beyond now plus
 * the clock-skew allowance is flagged (`future: true`, a `!` after its time): a wrong
 * clock or a forged time wrote it, and retention neither counts nor removes it.
 */
import type { Command } from 'commander';
import { isFutureDated, type Snapshot } from '../../repo/snapshot/snapshot.js';
import { formatBytes } from '../../util/bytes.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import { forTerminal } from '../../util/terminal.js';
import { snapshotsOf, sourceLabelOf } from '../../repo/snapshot/select.js';

export function snapshotJson(s: Snapshot, now = Date.now()): Record<string, unknown> {
  return {
    id: s.id,
    short_id: s.id.slice(0, 8),
    time: s.time,
    future: isFutureDated(s.time, now),
    ...(s.trusted === false ? { trusted: false } : {}),
    hostname: s.hostname,
    username: s.username,
    paths: s.paths,
    tags: s.tags,
    parent: s.parent ?? null,
    tree: s.tree,
    source: s.source,
    consistency: s.consistency ?? null,
    total_size: s.summary.totalBytes,
    total_files: s.summary.totalFiles,
    added_size: s.summary.addedBytes,
    summary: s.summary,
    program_version: s.programVersion,
  };
}

export function register(program: Command): void {
  program
    .command('snapshots')
    .description('list snapshots')
    .option('--host <name>', 'only snapshots of this host')
    .option('--tag <tag>', 'only snapshots with this tag')
    .option('--source <name>', 'only snapshots of this source (a name, or kind:name)')
    .option('--path <path>', 'only snapshots that backed up this path')
    .action(async (flags: { host?: string; tag?: string; source?: string; path?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const sel = { ...(flags.source !== undefined ? { source: flags.source } : {}), ...(flags.path !== undefined ? { path: flags.path } : {}) };
        const all = snapshotsOf(await repo.listSnapshots(), sel).filter(
          (s) => (!flags.host || s.hostname === flags.host) && (!flags.tag || s.tags.includes(flags.tag)),
        );
        const now = Date.now();
        if (g.json) return printJson(all.map((s) => snapshotJson(s, now)));
        const future = all.filter((s) => isFutureDated(s.time, now));
        const rows = all.map((s) => [s.id.slice(0, 8), s.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z') + (isFutureDated(s.time, now) ? ' !' : ''), s.hostname, sourceLabelOf(s), s.tags.join(','), formatBytes(s.summary.totalBytes), s.paths.join(' ')]);
        const head = ['ID', 'Time', 'Host', 'Source', 'Tags', 'Size', 'Paths'];
        const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
        const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
        console.log(line(head));
        for (const r of rows) console.log(forTerminal(line(r)));
        console.log(`${all.length} snapshot${all.length === 1 ? '' : 's'}`);
        if (future.length > 0) {
          console.log(`! ${future.length} dated in the future: a wrong clock or a forged time; "latest" and retention pass over them (forget ID removes one)`);
        }
      });
    });
}
