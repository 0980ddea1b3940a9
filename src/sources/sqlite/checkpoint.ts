/**
 * The replicator's own checkpoints. Its read pins stop SQLite's automatic checkpoints
 * from ever restarting the WAL, so once the WAL passes `checkpointFrames` it runs a
 * passive checkpoint while writers run; then, for a few milliseconds under the write
 * lock, it reads the last frames, checkpoints the rest and hands its pin to a reader
 * that lets the next writer start the WAL over (slot 0: every frame it drops was read).
 */
import { beginRead, endRead, sqliteError, type Connection } from './database.js';
import type { ReplicateEvent } from './replicate.js';

/** How long a checkpoint waits for the write lock before it is put off to the next poll. */
export const LOCK_WAIT_MS = 20;
/** The wait when the WAL has grown to 16 times the threshold and the writer must yield. */
const FORCED_LOCK_WAIT_MS = 1000;
/** At most this many frames (about 2 MiB of 4 KiB pages) are read while writers wait (a verification's pin too). */
export const LOCKED_READ_FRAMES = 512;

/** The narrow slice of the replicator a checkpoint needs. */
export interface CheckpointHost {
  readonly path: string;
  /** Which of the two readers holds the pin; the other is idle. */
  held: number;
  reader(i: number): Connection;
  readonly writeLock: Connection;
  /** Frames of the current WAL cycle read so far. */
  readonly framesRead: number;
  /** Reads everything committed so far (pins stay as they are). */
  catchUp(): Promise<boolean>;
  emit(e: ReplicateEvent): void;
}

export async function checkpoint(r: CheckpointHost, checkpointFrames: number): Promise<void> {
  if (r.framesRead < checkpointFrames) return;
  const idle = r.reader(1 - r.held);
  const writer = r.writeLock;
  try {
    idle.pragma('wal_checkpoint(PASSIVE)'); // the bulk of the copying, writers still running
  } catch (err) {
    return skipped(r, err);
  }
  // Writers wait while we read what is left under the write lock, so catch up first
  // and go ahead only when little is left. A writer that keeps outrunning us lets the
  // WAL grow to 16 times the threshold; then it waits for us once (back-pressure,
  // as SQLite's own RESTART checkpoints do), so the WAL stays bounded.
  const before = r.framesRead;
  await r.catchUp();
  const behind = r.framesRead - before > LOCKED_READ_FRAMES;
  if (behind && r.framesRead < 16 * checkpointFrames) return;
  const started = Date.now();
  try {
    // SQLite's lock is not fair: against a writer that never pauses, a short wait never wins.
    if (behind) writer.pragma(`busy_timeout = ${FORCED_LOCK_WAIT_MS}`);
    writer.exec('BEGIN IMMEDIATE');
  } catch (err) {
    return skipped(r, err);
  } finally {
    if (behind) writer.pragma(`busy_timeout = ${LOCK_WAIT_MS}`);
  }
  let complete = false;
  try {
    await r.catchUp();
    // The write transaction pins the newest snapshot, which we have now read whole,
    // so the older pin can go and the checkpoint can copy every frame.
    endRead(r.reader(r.held));
    const [row] = idle.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    complete = row !== undefined && row.busy === 0 && row.log === row.checkpointed;
    // A pin taken on a fully checkpointed WAL does not stop the next writer from
    // starting the WAL over, and every frame it drops has been read.
    beginRead(idle, r.path);
    r.held = 1 - r.held;
  } finally {
    writer.exec('ROLLBACK');
  }
  r.emit({ kind: 'checkpoint', complete, blockedMs: Date.now() - started });
}

/** A writer holds the lock: routine under load (the WAL grows a little until the next try), not an error. */
function skipped(r: CheckpointHost, err: unknown): void {
  const e = sqliteError(err, r.path, 'checkpoint');
  if (e.code !== 'SOURCE_UNAVAILABLE') throw e;
  r.emit({ kind: 'checkpoint', complete: false, blockedMs: 0, skipped: 'a writer holds the lock' });
}
