/**
 * `lifeboat oplog restore`: the journal's records up to a moment, in order, across
 * generations (rotations and truncations), cut only at a segment's marks so never
 * half a record: the history of the generation current at T (history.ts `historyFor`:
 * the generations before it, or the restored copy it continues), each piece from its
 * oldest stored byte, up to the last mark at or before T. A restore that writes
 * records stores what it wrote (fork.ts), so the output put back in place continues
 * this history instead of repeating it. Records are written to a new file
 * (created beside the target under a private name, linked to the target's name only
 * when complete, never through a symlink), to stdout (`-`), and optionally piped into
 * a replay command (argv, no shell) whose exit status decides success.
 *
 * Memory: one stored segment at a time (at most 8 MiB of records, or one record).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { write } from 'node:fs';
import { once } from 'node:events';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Writable } from 'node:stream';
import { LifeboatError } from '../../errors.js';
import { NewFile } from '../../engine/restore/new-file.js';
import { acquireLock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { OutputHash, storeRestoreRecord } from './fork.js';
import { describeGenerations, generations, historyFor } from './history.js';
import { logSource } from './names.js';
import { countRecords } from './records.js';
import { chainFrom, decodeSegment, type Piece } from './segment.js';

const writeAt = promisify(write);

export interface OplogRestoreOptions {
  name: string;
  /** A new file, or '-' for stdout; undefined: only the replay command gets the records. */
  output?: string;
  /** The records up to this moment; default: every record stored. */
  time?: Date;
  /** argv of a program that reads the records on its stdin; its stdout and stderr go to ours (stderr). */
  replay?: readonly string[];
  /** Store what was written, so the output put back in place continues this history (the CLI does; drills do not). */
  recordOutput?: boolean;
}

export interface OplogRestoreResult {
  output: string | null;
  /** The newest marker snapshot at or before the moment (what `oplog backup` had proven then), or null. */
  snapshot: string | null;
  records: number;
  bytes: number;
  generations: number;
  segments: number;
  /** The time of the last record written, or null when none was. */
  restoredTo: Date | null;
  /** Some older history was removed by retention: the records start after the journal's first. */
  trimmed: boolean;
  replayExit: number | null;
  /** The output was recorded: put back in the journal's place, it continues this history. False when it could not be stored. */
  recorded: boolean;
  durationMs: number;
}

interface Sink {
  write(buf: Buffer): Promise<void>;
}

export async function oplogRestore(repo: Repository, opts: OplogRestoreOptions): Promise<OplogRestoreResult> {
  const started = Date.now();
  if (opts.output === undefined && !opts.replay) throw new LifeboatError('USAGE', 'nothing to restore to', { hint: 'give --output FILE (or - for stdout), or --replay-command' });
  const file = opts.output !== undefined && opts.output !== '-' ? new NewFile(path.resolve(opts.output), 'oplog') : undefined;
  const lock = await acquireLock(repo.store, 'shared', `oplog restore ${opts.name}`);
  let child: ChildProcess | undefined;
  try {
    const gens = await generations(repo, opts.name);
    if (gens.length === 0) {
      throw new LifeboatError('NOT_FOUND', `no records of oplog ${opts.name} are stored`, { hint: '`lifeboat snapshots` lists the sources; `lifeboat oplog replicate` or `oplog backup` ship a journal' });
    }
    const sinks: Sink[] = [];
    if (file) sinks.push(fdSink(file.open()));
    else if (opts.output === '-') sinks.push(streamSink(process.stdout));
    let exited: Promise<number | null> | undefined;
    if (opts.replay) {
      const [cmd, ...args] = opts.replay;
      child = spawn(cmd as string, args, { stdio: ['pipe', 'pipe', 'inherit'], env: childEnv() });
      child.stdout?.pipe(process.stderr, { end: false });
      exited = new Promise((resolve, reject) => {
        child?.once('error', (err) => reject(new LifeboatError('FAILED', `the replay command ${cmd ?? ''} could not start: ${err.message}`, { hint: 'give a program on the PATH or its full path; the command is split into words, never run by a shell' })));
        child?.once('close', (code) => resolve(code));
      });
      // Resolves once it runs; a program that cannot start rejects `exited` first.
      await Promise.race([new Promise((resolve) => child?.once('spawn', resolve)), exited]);
      sinks.push(streamSink(child.stdin as Writable));
    }
    const limit = opts.time?.getTime() ?? Infinity;
    const byId = new Map(gens.map((g) => [g.id, g]));
    const pieces = historyFor(await describeGenerations(repo, opts.name, gens), limit);
    const written: Piece[] = [];
    const hash = new OutputHash();
    let records = 0;
    let segments = 0;
    let restoredTo: number | null = null;
    let trimmed = false;
    let done = false;
    let used = 0;
    for (const [id, pFrom, pTo] of pieces) {
      if (done) break;
      const gen = byId.get(id);
      const oldest = gen ? Math.min(...gen.names.map((n) => n.start)) : Infinity;
      if (oldest > pFrom) trimmed = true;
      if (!gen || oldest >= pTo) continue;
      const from = Math.max(pFrom, oldest);
      const { chain, gapAt } = chainFrom(from, gen.names);
      if (gapAt !== undefined && gapAt < pTo && (chain[chain.length - 1]?.lastTime ?? 0) <= limit) {
        throw new LifeboatError('CORRUPT', `generation ${gen.id} of oplog ${opts.name} has no segment at byte ${gapAt}: records after it cannot be restored in order`, {
          hint: '`lifeboat check` reports missing objects; restore to an earlier time, before the gap',
        });
      }
      used++;
      let at = from;
      for (const n of chain) {
        if (at >= pTo) break;
        const buf = await repo.getLog(logSource(opts.name), gen.id, n.file);
        if (!buf) throw new LifeboatError('CORRUPT', `segment ${gen.id}/${n.file} of oplog ${opts.name} disappeared during the restore`, { hint: 'a retention run may have removed it; restore again' });
        const { meta, data } = decodeSegment(buf, `${gen.id}/${n.file}`);
        let cut = at;
        let cutTime: number | null = null;
        for (const [offset, t] of meta.marks) {
          if (offset <= at) continue; // already written from a segment of another shipper
          if (t > limit) {
            done = true;
            break;
          }
          // A piece may end between marks (a record boundary): its records there share the next mark's time.
          [cut, cutTime] = [Math.min(offset, pTo), t];
          if (offset >= pTo) break;
        }
        if (cut > at) {
          const piece = data.subarray(at - meta.start, cut - meta.start);
          for (const s of sinks) await s.write(piece);
          hash.update(piece);
          records += countRecords(piece, meta.format);
          segments++;
          restoredTo = cutTime;
          const prev = written[written.length - 1];
          if (prev && prev[0] === gen.id && prev[2] === at) written[written.length - 1] = [gen.id, prev[1], cut];
          else written.push([gen.id, at, cut]);
          at = cut;
        }
        if (done) break;
      }
    }
    if (child) child.stdin?.end();
    let replayExit: number | null = null;
    if (exited) {
      replayExit = await exited;
      if (replayExit !== 0) {
        throw new LifeboatError('FAILED', `the replay command ${opts.replay?.[0] ?? ''} exited with ${replayExit ?? 'a signal'}`, { hint: 'its own messages are above; nothing was written to the output' });
      }
    }
    const snapshot = await markerAtOrBefore(repo, opts.name, limit);
    if (file) file.commit();
    let recorded = false;
    if (opts.recordOutput && opts.output !== undefined && hash.bytes > 0) {
      try {
        await storeRestoreRecord(repo, opts.name, hash.record(written, started));
        recorded = true;
      } catch {
        // A read-only repository still restores; the output then starts a new history if put back.
      }
    }
    return {
      output: file ? file.target : opts.output === '-' ? '-' : null,
      snapshot: snapshot?.id ?? null,
      records,
      bytes: hash.bytes,
      generations: used,
      segments,
      restoredTo: restoredTo === null ? null : new Date(restoredTo),
      trimmed,
      replayExit,
      recorded,
      durationMs: Date.now() - started,
    };
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    file?.discard();
    await lock.release();
  }
}

async function markerAtOrBefore(repo: Repository, name: string, limit: number): Promise<Snapshot | undefined> {
  const mine = (await repo.listSnapshots()).filter((s) => s.source.kind === 'oplog' && s.source.name === name && Date.parse(s.time) <= limit);
  return mine.sort((a, b) => Date.parse(a.time) - Date.parse(b.time)).pop();
}

/** The replay command's environment: ours without Lifeboat's secrets. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^LIFEBOAT_/.test(k) && /PASSWORD|TOKEN|SECRET|KEY/.test(k)) delete env[k];
  return env;
}

function streamSink(w: Writable): Sink {
  let broken: Error | undefined;
  w.on('error', (err) => (broken = err));
  return {
    async write(buf) {
      // A reader that stopped early (EPIPE) is not our failure: its exit status says whether it is one.
      if (broken || w.destroyed) return;
      if (!w.write(buf)) await Promise.race([once(w, 'drain'), once(w, 'close')]);
    },
  };
}

/** Writes to a file descriptor (the output file's). */
function fdSink(fd: number): Sink {
  return {
    async write(buf) {
      for (let off = 0; off < buf.length; ) off += (await writeAt(fd, buf, off, buf.length - off)).bytesWritten;
    },
  };
}
