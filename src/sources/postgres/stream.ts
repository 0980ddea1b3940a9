/**
 * Continuous WAL streaming: drives pg_receivewal on a physical replication slot (so
 * the server keeps WAL until it is received) into a spool directory and ships it to
 * the repository every interval — completed segments once, the segment being
 * written as a `.partial` object replaced each time it grows. The data-loss window is
 * then about one interval, not one 16 MiB segment.
 *
 * Every interval the server is asked where its WAL is and how far the receiver has
 * flushed (stream-probe.ts); what has been shipped is compared with that to prove a
 * moment (`status` events, engine/archive-status.ts). The receiver is owned:
 * it dies with this process and a successor takes over what a dead one left
 * (receiver.ts). pg_receivewal is restarted with back-off when it exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { dsnForChild } from './password.js';
import { parseWalName, readSegmentHeader, validateSegment } from './wal.js';
import { knownCluster, recordIdentity } from './archive.js';
import { runTool } from '../../util/process.js';
import { privateDir, spoolFor } from '../../engine/private-dir.js';
import { STATUS_EVERY_MS, StatusReporter, type ArchiveStatus, type HealthReport } from '../../engine/archive-status.js';
import { LsnWitness, segmentStart } from './lsn-proof.js';
import { streamSource, timelineDir } from './names.js';
import { SpoolClaim, freeSlot, judgeSlotUser, receiverAppName } from './receiver.js';
import { tiedCommand } from '../../util/tied-child.js';
import { Prober, type StreamProbe } from './stream-probe.js';

export interface PgStreamOptions {
  name: string;
  dsn: string;
  slot?: string;
  spool?: string;
  intervalMs?: number;
  /** Directory holding pg_receivewal (default: found on PATH). */
  binDir?: string;
  signal: AbortSignal;
  onEvent?: (e: StreamEvent) => void;
}

export type StreamEvent =
  | ArchiveStatus
  | { kind: 'segment'; file: string }
  | { kind: 'partial'; file: string; bytes: number }
  | { kind: 'receiver-exit'; code: number | null; stderr: string; restartInMs: number }
  /** The slot or the spool was taken back from what a dead streamer left behind. */
  | { kind: 'takeover'; detail: string }
  /** WAL in the spool that this server cannot continue (another cluster's, or ahead of its history), moved aside. */
  | { kind: 'foreign'; file: string; detail: string };

/** A receiver running this long without holding the slot is not streaming. */
const CONNECT_GRACE_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;
const CONNECTING_POLL_MS = 200;
/**
 * A receiver that holds the slot proves its first position within an interval or two
 * (the partial segment shipped past the server's position). Until then it has no
 * verdict; this long without one is a failure, not a slow start.
 */
const FIRST_PROOF_GRACE_MS = 30_000;

export async function pgStream(repo: Repository, opts: PgStreamOptions): Promise<void> {
  const source = streamSource(opts.name);
  const slot = opts.slot ?? `lifeboat_${opts.name.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`;
  // Never a guessable /tmp path: anyone could plant a directory or symlink there (private-dir.ts).
  const chosen = opts.spool ? { dir: path.resolve(opts.spool) } : await spoolFor('stream', opts.name);
  const spool = chosen.dir;
  const bin = (b: string) => (opts.binDir ? path.join(opts.binDir, b) : b);
  const emit = (e: StreamEvent) => opts.onEvent?.(e);
  // pg_receivewal gets the DSN without its password (which goes in PGPASSWORD): `ps` shows argv to everyone.
  const toolDsn = dsnForChild(opts.dsn);
  await privateDir(spool);
  const claim = await SpoolClaim.take(spool);
  const appName = receiverAppName();
  const prober = new Prober(opts.dsn, slot);
  const witness = new LsnWitness();
  const interval = opts.intervalMs ?? 1000;
  // A status every interval (at most every 5 s): the claim is then as fresh as the proof.
  const reporter = new StatusReporter(emit, Math.min(interval, STATUS_EVERY_MS));

  // --- shipping ------------------------------------------------------------
  /** WAL up to this LSN is in the repository (from this streamer's own shipping). */
  let shipped = 0n;
  const partialShipped = new Map<string, number>(); // partial file -> mtime shipped
  const sync = async (probe: StreamProbe | undefined, beat: () => void): Promise<void> => {
    // The receiver's flush position is ours to rely on only while our receiver holds the slot.
    const flushed = probe?.holder?.applicationName === appName ? probe.flushed : null;
    const segSize = probe?.segSize ?? 16 * 1024 * 1024;
    let walFiles = 0;
    for (const file of (await fs.readdir(spool)).sort()) {
      let wal;
      try {
        wal = parseWalName(file, segSize);
      } catch {
        continue;
      }
      walFiles++;
      const full = path.join(spool, file);
      if (wal.kind === 'segment' || wal.kind === 'history') {
        const data = await fs.readFile(full);
        if (wal.kind === 'segment') validateSegment(wal, data, probe?.systemId ? { systemId: probe.systemId } : {});
        try {
          await repo.putLog(source, timelineDir(wal.timeline), file, data);
        } catch (err) {
          if (!(err instanceof LifeboatError && err.code === 'ALREADY_EXISTS')) throw err;
          // A retransmitted segment may differ in its zero tail; the first copy stands.
          // Another cluster's segment of the same name is no retransmission: nothing is stored, and it says so.
          const stored = wal.kind === 'segment' ? await repo.getLog(source, timelineDir(wal.timeline), file) : undefined;
          const theirs = stored && stored.length >= 40 ? readSegmentHeader(stored).systemId : undefined;
          const ours = readSegmentHeader(data).systemId;
          if (theirs !== undefined && theirs !== ours) {
            throw new LifeboatError('CORRUPT', `the repository already holds ${file} of another cluster (system identifier ${theirs}); this server's (${ours}) was not stored`, {
              hint: 'a cluster re-created under an old source name: stream it under a new name, or remove the old WAL from this repository first',
            });
          }
        }
        if (wal.kind === 'segment') {
          await repo.store.delete(`logs/${source}/${timelineDir(wal.timeline)}/${file}.partial`);
          const end = segmentStart((wal.segno as bigint) + 1n, segSize);
          if (end > shipped) shipped = end;
        }
        await fs.rm(full);
        emit({ kind: 'segment', file });
      } else if (wal.kind === 'partial') {
        const st = await fs.stat(full).catch(() => undefined);
        if (!st) continue;
        const start = segmentStart(wal.segno as bigint, segSize);
        // What the receiver had flushed into this segment, past what is shipped.
        const ahead = flushed !== null && flushed > shipped && flushed >= start && flushed <= start + BigInt(segSize) ? flushed : undefined;
        // mtime alone misses a write in the same clock tick as the last read; the
        // receiver's flush position moving past what was shipped does not.
        if (partialShipped.get(file) === st.mtimeMs && ahead === undefined) continue;
        const data = await fs.readFile(full);
        await repo.putLog(source, timelineDir(wal.timeline), file, data, { replace: true });
        partialShipped.set(file, st.mtimeMs);
        // Read after the probe, so it holds at least what the receiver had flushed then.
        if (ahead !== undefined) shipped = ahead;
        emit({ kind: 'partial', file, bytes: data.length });
      }
      beat();
    }
    // Flushed to a segment boundary with nothing left in the spool (an idle server
    // after a segment switch): every segment up to it was shipped before it was removed.
    if (walFiles === 0 && flushed !== null && flushed > shipped && flushed % BigInt(segSize) === 0n) shipped = flushed;
  };

  // --- the receiver ----------------------------------------------------------
  let child: ChildProcess | undefined;
  let childStarted = 0;
  let backoff = 1000;
  let nextStart = 0;
  /** Why the receiver is not running, while it is not. */
  let receiverProblem: { error: string; hint?: string } | undefined;

  const startReceiver = async (probe: StreamProbe): Promise<void> => {
    if (child || Date.now() < nextStart) return;
    const retryLater = (error: string, hint?: string) => {
      receiverProblem = { error, ...(hint ? { hint } : {}) };
      nextStart = Date.now() + backoff;
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    };
    if (probe.holder && probe.holder.applicationName !== appName) {
      const verdict = judgeSlotUser(probe.holder);
      if (!verdict.take) return retryLater(`replication slot ${slot} is in use: ${verdict.why}`, 'stop that receiver, or stream with another --slot');
      await freeSlot(await prober.connect(), slot, probe.holder);
      emit({ kind: 'takeover', detail: `freed slot ${slot}: ${verdict.why}` });
    }
    if (probe.systemId) {
      // pgBackRest's rule: one source, one cluster. A re-created cluster's WAL has the same
      // names as the old one's, so it would be dropped as "already archived".
      const known = await knownCluster(repo, opts.name);
      if (known.systemId && known.systemId !== probe.systemId) {
        return retryLater(
          `the server at the DSN is another cluster (system identifier ${probe.systemId}) than the one source ${opts.name} archives (${known.systemId})`,
          'a cluster re-created with initdb, or a DSN that points elsewhere: stream it under a new source name, or point the DSN back',
        );
      }
      if (!known.systemId) await recordIdentity(repo, opts.name, { systemId: probe.systemId, pgMajor: probe.pgMajor });
    }
    await setAsideForeign(spool, probe, (file, detail) => emit({ kind: 'foreign', file, detail }));
    if (!probe.slotExists) {
      const created = await runTool(bin('pg_receivewal'), ['--create-slot', '--if-not-exists', '-S', slot, '-d', toolDsn.dsn], toolDsn.env);
      if (created.code !== 0) {
        return retryLater(`cannot create replication slot ${slot}: ${created.stderr.trim().split('\n')[0] ?? ''}`, 'the role needs REPLICATION, pg_hba.conf a "replication" line, and max_wal_senders > 0');
      }
    }
    const { cmd, args } = tiedCommand(bin('pg_receivewal'), ['-D', spool, '-S', slot, '-d', toolDsn.dsn, '--synchronous', '--no-loop', '-s', '1']);
    let stderr = '';
    // PGAPPNAME names the connection (over pg_receivewal's default), so a successor can tell it is ours.
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...toolDsn.env, PGAPPNAME: appName } });
    child = c;
    childStarted = Date.now();
    receiverProblem = undefined;
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()).length > 65536 && (stderr = stderr.slice(-4096)));
    c.on('error', (err) => (stderr += err.message));
    c.on('close', (code) => {
      child = undefined;
      if (opts.signal.aborted) return;
      if (Date.now() - childStarted > 60_000) backoff = 1000;
      // With --no-loop it ends on "disconnected" whatever happened: why is on a line before.
      const said = stderr.trim().split('\n').filter((l) => l.trim() !== '');
      const last = said.filter((l) => !/: (error|fatal): disconnected$/.test(l.trim())).pop() ?? said.pop() ?? '';
      emit({ kind: 'receiver-exit', code, stderr: stderr.trim(), restartInMs: backoff });
      retryLater(`pg_receivewal exited (${code ?? 'signal'})${last ? `: ${last}` : ''}`, 'the server may be down or restarting; the receiver is restarted with back-off');
    });
    await claim.receiverStarted(c.pid);
  };

  // --- one interval: probe, keep the receiver, ship, judge -------------------
  /** The latest verdict; none until the first interval that could judge. */
  let health: HealthReport | undefined;
  /** When the receiver first held the slot while nothing was proven yet. */
  let firstHeld: number | undefined;
  const beat = () => health && reporter.report({ ...health, archivedThrough: through() });
  const through = () => (witness.through === null ? null : new Date(witness.through));
  /** One interval's work; true while a receiver just started has not taken the slot yet. */
  const cycle = async (): Promise<boolean> => {
    const t = Date.now();
    let probe: StreamProbe | undefined;
    let problem: { error: string; hint?: string | undefined } | undefined;
    try {
      probe = await prober.probe();
      await startReceiver(probe);
    } catch (err) {
      problem = { error: (err as Error).message, hint: (err as LifeboatError).hint };
    }
    try {
      await sync(probe, beat);
    } catch (err) {
      problem ??= { error: `cannot ship WAL to the repository: ${(err as Error).message}`, hint: (err as LifeboatError).hint ?? 'check the repository store' };
    }
    if (probe && !problem) {
      witness.observe(t, probe.current);
      witness.provenThrough(shipped);
    }
    problem ??= receiverProblem;
    const holding = probe?.holder?.applicationName === appName;
    if (!problem && !holding && child && Date.now() - childStarted > CONNECT_GRACE_MS) {
      problem = { error: `pg_receivewal has not taken slot ${slot} after ${CONNECT_GRACE_MS / 1000} s`, hint: 'check the server log for its replication connection' };
    }
    if (!problem && !holding) return true; // still connecting: no verdict yet
    // Healthy means proven: holding the slot says WAL flows to the spool, not that it reaches the repository.
    if (!problem && witness.through === null) {
      firstHeld ??= Date.now();
      if (Date.now() - firstHeld <= FIRST_PROOF_GRACE_MS) return true;
      problem = { error: `nothing proven in the repository ${FIRST_PROOF_GRACE_MS / 1000} s after the receiver took slot ${slot}`, hint: 'WAL reaches the spool but is not shipped: check the repository store and the streamer log' };
    }
    health = problem ? { healthy: false, archivedThrough: null, error: problem.error, hint: problem.hint } : { healthy: true, archivedThrough: null };
    beat();
    return false;
  };

  try {
    while (!opts.signal.aborted) {
      const connecting = await cycle();
      // A receiver that is connecting is looked at again soon: a restart streams sooner.
      const wait = connecting ? Math.min(interval, CONNECTING_POLL_MS) : interval;
      await new Promise<void>((resolve) => {
        const done = () => (clearTimeout(t), opts.signal.removeEventListener('abort', done), resolve());
        const t = setTimeout(done, wait);
        opts.signal.addEventListener('abort', done, { once: true });
      });
    }
  } finally {
    const c = child as ChildProcess | undefined;
    if (c) {
      const closed = new Promise((r) => c.once('close', r));
      c.kill('SIGTERM');
      await closed;
    }
    try {
      // Final sync on a clean stop: whatever pg_receivewal flushed is shipped.
      await sync(undefined, () => {});
    } finally {
      await prober.close();
      await claim.release();
      if (chosen.temporary) await fs.rm(chosen.temporary, { recursive: true, force: true });
    }
  }
}

/**
 * A receiver killed while it zero-fills a new `.partial` (a streamer killed with -9 takes
 * it along) leaves one shorter than a segment, which every later pg_receivewal refuses
 * ("has N bytes, should be 0 or 16777216"): the stream would stay down for good. Extending
 * it with zeros is the state its preallocation would have reached, and pg_receivewal
 * streams a `.partial` again from the segment's start, so nothing in it is trusted.
 */
async function finishPreallocation(fh: fs.FileHandle, segSize: number): Promise<void> {
  const st = await fh.stat();
  if (st.isFile() && st.size > 0 && st.size < segSize) await fh.truncate(segSize);
}

/**
 * pg_receivewal starts where the newest WAL file in its directory ends. A spool left by
 * another cluster (re-created with initdb under the same source name) or by a history
 * this server does not have (it was restored to an earlier moment) makes it ask for a
 * position the server never wrote, and it fails the same way forever. Such files are
 * moved to `foreign/` in the spool (kept, not deleted) before the receiver starts.
 */
async function setAsideForeign(spool: string, probe: StreamProbe, report: (file: string, detail: string) => void): Promise<void> {
  for (const file of await fs.readdir(spool)) {
    let wal;
    try {
      wal = parseWalName(file, probe.segSize);
    } catch {
      continue;
    }
    if (wal.kind !== 'segment' && wal.kind !== 'partial') continue;
    const full = path.join(spool, file);
    const head = Buffer.alloc(40);
    // One open for both: a `.partial` is written to (never through a symlink), a segment only read.
    const fh = await fs.open(full, wal.kind === 'partial' ? constants.O_RDWR | constants.O_NOFOLLOW : 'r');
    let got = 0;
    try {
      if (wal.kind === 'partial') await finishPreallocation(fh, probe.segSize);
      got = (await fh.read(head, 0, 40, 0)).bytesRead;
    } finally {
      await fh.close();
    }
    const sysid = got === 40 && head.readUInt16LE(0) !== 0 ? readSegmentHeader(head).systemId : undefined;
    let why: string | undefined;
    if (sysid && probe.systemId && sysid !== probe.systemId) why = `WAL of another cluster (system identifier ${sysid}; the server is ${probe.systemId})`;
    else if (segmentStart(wal.segno as bigint, probe.segSize) > probe.current) why = 'WAL ahead of everything the server has written (another history)';
    if (!why) continue;
    const aside = path.join(spool, 'foreign');
    await privateDir(aside);
    await fs.rename(full, path.join(aside, `${file}.${Date.now()}`));
    report(file, `${why}: moved to ${aside}`);
  }
}
