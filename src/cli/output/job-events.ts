/**
 * The child's end of the job protocol (src/daemon/job-protocol.ts): when the CLI runs
 * as a daemon job, the output layer also reports its result, errors and progress as
 * typed events on the event descriptor. Outside a job every function here is a no-op.
 *
 * Writes are synchronous: the error event must be out before the process exits, also
 * through a process.exit(); the daemon's end of the pipe reads continuously, so a
 * write waits at most for the daemon to catch up.
 */
import { writeSync } from 'node:fs';
import { JOB_PROTOCOL_VERSION, type JobEvent } from '../../daemon/job-protocol.js';

type Payload = JobEvent extends infer E ? (E extends JobEvent ? Omit<E, 'v'> : never) : never;

let fd: number | undefined;

/** From now on, events go to `descriptor` (the daemon's pipe). */
export function openJobChannel(descriptor: number): void {
  fd = descriptor;
}

/** Whether this process runs as a daemon job. */
export function inJob(): boolean {
  return fd !== undefined;
}

/** Sends one event; a daemon that stopped listening (it gave up on this job) silences the channel. */
export function emitJobEvent(event: Payload): void {
  if (fd === undefined) return;
  const bytes = Buffer.from(`${JSON.stringify({ v: JOB_PROTOCOL_VERSION, ...event })}\n`);
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off);
    } catch (err) {
      // EAGAIN only if someone made the pipe non-blocking: wait a moment and go on.
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        continue;
      }
      fd = undefined;
      return;
    }
  }
}
