/**
 * lifeboat oplog backup | replicate | restore — an application's own journal shipped
 * record by record, and its records up to a moment written out or replayed.
 */
import type { Command } from 'commander';
import { LifeboatError } from '../../../errors.js';
import { parseTargetTime } from '../../../engine/target-time.js';
import { findConfig, withRepo, type GlobalOptions } from '../../../cli/context.js';
import { printJson } from '../../../cli/output/render.js';
import { snapshotJson } from '../../../cli/commands/snapshots.js';
import { collect, flagOf } from '../../../cli/commands/options.js';
import { durationMs, type Duration } from '../../../util/duration.js';
import { defaultName, oplogBackup } from '../backup.js';
import { commandWords, oplogOptions, settingsOf, type RecordFormat } from '../options.js';
import { Shipper, type OplogEvent } from '../replicate.js';
import { oplogRestore } from '../restore.js';
import { renderReplicateEvent } from '../../../cli/output/replicate-events.js';
import { restoreRequestOptions } from '../../../config/model.js';
import { stopSignal } from '../../../cli/stop-signal.js';

interface ShipFlags {
  name?: string;
  format?: RecordFormat;
  timeField?: string;
}

const formatFlag = () => flagOf(oplogOptions().shape.format, { arg: '<format>', default: 'jsonl' });
const timeFieldFlag = () => flagOf(oplogOptions().shape.time_field, { arg: '<field>' });

export function register(program: Command): void {
  const oplog = program.command('oplog').description("an application's own operation log: shipped record by record, restored to any moment");

  oplog
    .command('backup <file>')
    .description('ship every whole record the journal holds now, then record how far the shipped history reaches (a marker snapshot)')
    .option('--name <name>', 'name in the repository (default: the file name without extension)')
    .addOption(formatFlag())
    .addOption(timeFieldFlag())
    .option('--tag <tag>', 'tag the snapshot (repeatable)', collect, [])
    .action(async (file: string, f: ShipFlags & { tag: string[] }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const s = await oplogBackup(repo, { file, name: f.name ?? defaultName(file), format: f.format ?? 'jsonl', timeField: f.timeField, tags: f.tag, onEvent: (e) => renderReplicateEvent(e, { ...g, json: false, quiet: true }, eventLine, ['warning']) });
        if (g.json) return printJson(snapshotJson(s));
        if (!g.quiet) console.log(`snapshot ${s.id.slice(0, 8)} of ${s.source.name ?? ''}: shipped through byte ${String(s.consistency?.offset)} of generation ${String(s.consistency?.generation)}`);
      });
    });

  oplog
    .command('replicate <file>')
    .description('ship new whole records every interval until SIGINT/SIGTERM (rotation and truncation followed; a final ship on a clean stop)')
    .option('--name <name>', 'name in the repository (default: the file name without extension)')
    .addOption(flagOf(oplogOptions().shape.interval, { default: '1s' }))
    .addOption(formatFlag())
    .addOption(timeFieldFlag())
    .action(async (file: string, f: ShipFlags & { interval: Duration }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const stop = stopSignal();
        const shipper = new Shipper(repo, {
          file,
          name: f.name ?? defaultName(file),
          format: f.format ?? 'jsonl',
          timeField: f.timeField,
          intervalMs: durationMs(f.interval),
          signal: stop.signal,
          onEvent: (e) => renderReplicateEvent(e, g, eventLine, ['warning', 'loss']),
        });
        const s = await shipper.run();
        if (g.json) printJson({ kind: 'stopped', generation: s.generation, records: s.records, segments: s.segments, offset: s.point.offset });
        else if (!g.quiet) console.log(`stopped: ${s.records} records in ${s.segments} segments (generation ${s.generation}, byte ${s.point.offset})`);
      });
    });

  oplog
    .command('restore <name>')
    .description('write the records up to a moment (never half a record), in order, to a new file or stdout, and optionally replay them')
    .option('-o, --output <file>', 'a new file (never overwritten), or - for stdout')
    .addOption(flagOf(restoreRequestOptions().shape.time, { arg: '<rfc3339>', description: 'the records up to this moment, e.g. 2026-11-21T14:30:05Z (default: every record stored)' }))
    .option('--replay-command <command>', 'pipe the records into this program: split into words at spaces, never run by a shell; its exit status decides success')
    .option('--replay', "pipe the records into the source's replay_command from lifeboat.yaml")
    .action(async (name: string, f: { output?: string; time?: string; replayCommand?: string; replay?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const time = f.time === undefined ? undefined : parseTargetTime(f.time);
      const replay = await replayArgv(g, name, f);
      const toStdout = f.output === '-';
      await withRepo(g, async (repo) => {
        const r = await oplogRestore(repo, { name, ...(f.output !== undefined ? { output: f.output } : {}), ...(time ? { time } : {}), ...(replay ? { replay } : {}), recordOutput: true });
        const json = {
          output: r.output,
          snapshot: r.snapshot,
          records: r.records,
          bytes: r.bytes,
          generations: r.generations,
          segments: r.segments,
          restored_to: r.restoredTo?.toISOString() ?? null,
          trimmed: r.trimmed,
          replay_exit: r.replayExit,
          recorded: r.recorded,
          duration_ms: r.durationMs,
        };
        // With the records on stdout, what is said about them goes to stderr.
        const say = (line: string) => (toStdout ? process.stderr.write(`${line}\n`) : console.log(line));
        if (g.json) return toStdout ? say(JSON.stringify(json)) : printJson(json);
        if (f.output !== undefined && r.bytes > 0 && !r.recorded) process.stderr.write('warning: this restore could not be recorded in the repository (read-only?): put back in place, its records would be shipped again as a new history\n');
        if (!g.quiet) say(`restored ${r.records} records of ${name}${r.restoredTo ? ` up to ${r.restoredTo.toISOString()}` : ''}${r.output && !toStdout ? ` to ${r.output}` : ''}${replay ? `, replayed by ${replay[0] ?? ''}` : ''}${r.trimmed ? ' (older records were removed by retention)' : ''}`);
      });
    });
}

async function replayArgv(g: GlobalOptions, name: string, f: { replayCommand?: string; replay?: boolean }): Promise<string[] | undefined> {
  if (f.replayCommand !== undefined && f.replay) throw new LifeboatError('USAGE', 'give --replay or --replay-command, not both', { hint: '--replay runs the replay_command lifeboat.yaml names' });
  if (f.replayCommand !== undefined) return commandWords(f.replayCommand);
  if (!f.replay) return undefined;
  const source = (await findConfig(g))?.sources.get(name);
  if (!source || source.kind !== 'oplog') throw new LifeboatError('USAGE', `--replay needs lifeboat.yaml to name an oplog source "${name}"`, { hint: 'give --config FILE, or --replay-command PROGRAM' });
  const c = settingsOf(source).replay_command;
  if (c === undefined) throw new LifeboatError('USAGE', `source ${name} has no replay_command`, { hint: 'set replay_command in lifeboat.yaml, or give --replay-command' });
  return commandWords(c);
}

/** What `oplog replicate` says about its own events (the rest is renderReplicateEvent's). */
function eventLine(e: OplogEvent): string | undefined {
  if (e.kind === 'restored-copy') return `generation ${e.generation} begins with a restored copy (${e.bytes} bytes): it continues ${e.continues.generation} from byte ${e.continues.offset}`;
  return e.kind === 'generation' ? `generation ${e.generation} (${e.reason})` : undefined;
}
